#!/bin/sh
# cluster-launch.sh: the "ssh" of the cluster of scripts/cluster.sh, for
# MPI launchers: `cluster-launch.sh [-OPTIONS..] HOST COMMAND...` runs
# COMMAND (its words joined by spaces and read by sh, as ssh does) on HOST
# (a cluster host's name, address or index): in its network namespace, in a
# UTS namespace of its own named after the host. Leading options (ssh's -x,
# -T, ... that launchers add) are ignored.
# Like ssh, it fails (status 255) when HOST does not answer from the
# caller's network namespace within 3 s.
# UCX (MPICH's network layer here) is told to use TCP only (UCX_TLS=tcp,self
# unless UCX_TLS is set already): the hosts share this machine's /dev/shm
# and pids, and UCX would otherwise pass messages between them through
# shared memory, which real hosts cannot; OFI is told the same
# (FI_PROVIDER=tcp unless set).
#   MPICH:    mpiexec -launcher ssh -launcher-exec .../cluster-launch.sh
#   Open MPI: mpiexec --mca plm_rsh_agent .../cluster-launch.sh
PREFIX=ferry-h
NET=10.77.0
while [ $# -gt 0 ]; do
    case "$1" in
        -[lopFiEeJLRDWbcmQS]) shift 2 ;; # ssh options with an argument
        -*) shift ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "cluster-launch.sh: usage: [OPTIONS] HOST COMMAND..." >&2; exit 255; }
host="$1"; shift
case "$host" in
    "$PREFIX"[0-9]*) i="${host#"$PREFIX"}" ;;
    "$NET".*) i=$((${host#"$NET".} - 10)) ;;
    *) i="$host" ;;
esac
ns="$PREFIX$i"
if ! ip netns list | grep -qE "^$ns( |\$)"; then
    echo "cluster-launch.sh: no cluster host '$host' (hosts: $(ip netns list | awk '{print $1}' | grep "^$PREFIX" | tr '\n' ' '))" >&2
    exit 255
fi
# As ssh would: a host that does not answer from here (its link is down:
# the harness's hosts cases cut links on purpose) cannot be reached. A
# refused connection is an answer (nothing listens on port 22 here).
addr="$NET.$((10 + i))"
knock="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/22"' "$addr" 2>&1)"
case $? in
    0) ;;
    124) echo "ssh: connect to host $host port 22: Connection timed out" >&2; exit 255 ;;
    *) case "$knock" in
           *refused*) ;;
           *) echo "ssh: connect to host $host port 22: ${knock##*: }" >&2; exit 255 ;;
       esac ;;
esac
if [ -n "${FERRY_CLUSTER_LAUNCH_LOG:-}" ]; then
    echo "$(date +%T.%N) $host -> $ns: $*" >>"$FERRY_CLUSTER_LAUNCH_LOG"
fi
UCX_TLS="${UCX_TLS:-tcp,self}"
# The same for OFI (which `ferry run --hosts` picks for MPICH): its TCP
# provider, not shared memory.
FI_PROVIDER="${FI_PROVIDER:-tcp}"
export UCX_TLS FI_PROVIDER
# shellcheck disable=SC2016  # expanded by the inner sh
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec sh -c "$1"' "$ns" "$*"
