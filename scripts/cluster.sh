#!/usr/bin/env bash
# cluster.sh: a small cluster of "hosts" on this machine, for ferry's
# multi-host tests: network namespaces joined by a bridge, each with its own
# address and host name.
#
#   scripts/cluster.sh up [N]         create hosts 1..N (default 4; idempotent)
#   scripts/cluster.sh down           remove everything `up` created
#   scripts/cluster.sh status         list the hosts and check they answer
#   scripts/cluster.sh hosts [I..]    print the host names (all, or hosts I..),
#                                     comma-separated
#   scripts/cluster.sh exec HOST CMD...   run CMD on HOST (name, address or
#                                     index), as root, with HOST's host name
#   scripts/cluster.sh launcher       print the path of the launcher for
#                                     MPICH's hydra (-launcher ssh
#                                     -launcher-exec) and Open MPI
#                                     (--mca plm_rsh_agent)
#   scripts/cluster.sh env            print the exports that make both
#                                     MPIs' mpiexec (and `ferry run
#                                     --hosts`) start ranks on the hosts:
#                                     eval "$(scripts/cluster.sh env)"
#
# Host I (1..N) is the network namespace ferry-hI with the address
# 10.77.0.(10+I)/24 on its eth0, a veth whose other end is on the bridge
# ferrybr0 (10.77.0.254/24) in the root namespace. Host names resolve
# everywhere: a marked block in /etc/hosts (root namespace) and
# /etc/netns/ferry-hI/hosts (which `ip netns exec` puts over /etc/hosts in
# the namespace). Commands on a host run in its network namespace and in a
# UTS namespace of their own whose host name is the host's (so hostname()
# says where a process is). The mount, pid and IPC namespaces and the file
# system stay shared: every host sees the same files and processes.
#
# Tests do: `scripts/cluster.sh up; trap 'scripts/cluster.sh down' EXIT`.
# `down` removes every ferry-h* namespace, the bridge, the /etc/netns
# directories and the /etc/hosts block, whatever `up` got to; it kills the
# processes still running in those namespaces first. Needs root.
#
# Environment: FERRY_CLUSTER_HOSTS (default N, 4).
set -euo pipefail

PREFIX=ferry-h
BRIDGE=ferrybr0
NET=10.77.0
BRIDGE_ADDR="$NET.254"
MARK="# ferry cluster (scripts/cluster.sh)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "cluster.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, /etc/hosts)"

# The namespaces of ours that exist now, in order.
existing() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+\$" | sort -V || true
}

addr_of() { echo "$NET.$((10 + $1))"; }

# host_index HOST: the index I of a host given by name, address or index.
host_index() {
    local h="$1"
    case "$h" in
        "$PREFIX"[0-9]*) h="${h#"$PREFIX"}" ;;
        "$NET".*) h="${h#"$NET".}"; [[ "$h" =~ ^[0-9]+$ ]] && h=$((h - 10)) ;;
    esac
    [[ "$h" =~ ^[0-9]+$ ]] && [ "$h" -ge 1 ] && ip netns list | grep -qE "^${PREFIX}${h}( |\$)" \
        || return 1
    echo "$h"
}

# The hosts file of the namespaces: localhost and every host.
hosts_file() {
    local n="$1" j
    printf '127.0.0.1 localhost\n::1 localhost\n'
    for j in $(seq 1 "$n"); do
        printf '%s %s%s\n' "$(addr_of "$j")" "$PREFIX" "$j"
    done
}

# Rewrites the marked block of the root namespace's /etc/hosts (in place:
# /etc/hosts may be a mount point that cannot be replaced by a rename).
etc_hosts_block() {
    local n="$1" tmp j
    tmp="$(mktemp)"
    awk -v m="$MARK" '$0 == m { skip = !skip; next } !skip' /etc/hosts >"$tmp"
    if [ "$n" -gt 0 ]; then
        {
            echo "$MARK"
            for j in $(seq 1 "$n"); do printf '%s %s%s\n' "$(addr_of "$j")" "$PREFIX" "$j"; done
            echo "$MARK"
        } >>"$tmp"
    fi
    cat "$tmp" >/etc/hosts
    rm -f "$tmp"
}

up() {
    local n="${1:-${FERRY_CLUSTER_HOSTS:-4}}" i ns veth
    if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 200 ]; then
        die "bad host count '$n' (1 to 200)"
    fi
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    ip addr replace "$BRIDGE_ADDR/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for i in $(seq 1 "$n"); do
        ns="$PREFIX$i"
        veth="$PREFIX$i-v"
        ip netns list | grep -qE "^$ns( |\$)" || ip netns add "$ns"
        if ! ip link show "$veth" >/dev/null 2>&1; then
            ip link add "$veth" type veth peer name eth0 netns "$ns"
        fi
        ip link set "$veth" master "$BRIDGE"
        ip link set "$veth" up
        ip netns exec "$ns" ip link set lo up
        ip netns exec "$ns" ip addr replace "$(addr_of "$i")/24" dev eth0
        ip netns exec "$ns" ip link set eth0 up
        mkdir -p "/etc/netns/$ns"
        hosts_file "$n" >"/etc/netns/$ns/hosts"
    done
    # hosts beyond N from an earlier, larger `up`
    for ns in $(existing); do
        [ "${ns#"$PREFIX"}" -le "$n" ] || remove_host "$ns"
    done
    etc_hosts_block "$n"
    echo "cluster.sh: up: $(hosts) (bridge $BRIDGE $BRIDGE_ADDR)"
}

# remove_host NS: kills what runs in namespace NS and removes it.
remove_host() {
    local ns="$1" pids
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086  # a list of pids
        kill -TERM $pids 2>/dev/null || true
        sleep 0.5
        pids="$(ip netns pids "$ns" 2>/dev/null || true)"
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    ip link del "$ns-v" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
}

down() {
    local ns veth d
    for ns in $(existing); do
        remove_host "$ns"
    done
    # veths whose namespace is gone already
    for veth in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' \
                  | grep -E "^${PREFIX}[0-9]+-v\$" || true); do
        ip link del "$veth" 2>/dev/null || true
    done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link del "$BRIDGE"
    fi
    for d in /etc/netns/"$PREFIX"*; do
        [ -e "$d" ] && [[ "$(basename "$d")" =~ ^${PREFIX}[0-9]+$ ]] && rm -rf "$d"
    done
    rmdir /etc/netns 2>/dev/null || true
    etc_hosts_block 0
    echo "cluster.sh: down"
}

# hosts [I..]: the names, comma-separated.
hosts() {
    local out=() i
    if [ $# -eq 0 ]; then
        for ns in $(existing); do out+=("$ns"); done
    else
        for i in "$@"; do
            i="$(host_index "$i")" || die "no host '$i' (is the cluster up?)"
            out+=("$PREFIX$i")
        done
    fi
    [ ${#out[@]} -gt 0 ] || die "the cluster is not up"
    (IFS=,; echo "${out[*]}")
}

# probe NS ADDR: whether ADDR answers a TCP connection from NS (a refusal
# counts as an answer).
probe() {
    local out
    out="$(ip netns exec "$1" timeout 3 bash -c "exec 3<>/dev/tcp/$2/9" 2>&1)" && return 0
    [[ "$out" == *refused* ]]
}

status() {
    local ns i bad=0 name addr reach peer
    if [ -z "$(existing)" ]; then
        echo "cluster.sh: no hosts (down)"
        return 0
    fi
    printf '%-10s %-12s %-10s %s\n' host address hostname reach
    for ns in $(existing); do
        i="${ns#"$PREFIX"}"
        addr="$(ip netns exec "$ns" ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')"
        name="$(run_on "$i" hostname 2>/dev/null || echo '?')"
        # a TCP connection to a closed port of the bridge and of the next
        # host: "refused" means the address answers
        reach=ok
        for peer in "$BRIDGE_ADDR" "$(addr_of $(( i % $(existing | wc -l) + 1 )))"; do
            if ! probe "$ns" "$peer"; then reach="no answer from $peer"; bad=1; fi
        done
        printf '%-10s %-12s %-10s %s\n' "$ns" "${addr:-none}" "$name" "$reach"
    done
    echo "bridge $BRIDGE: $(ip -4 -o addr show dev "$BRIDGE" 2>/dev/null | awk '{print $4}')"
    return $bad
}

# run_on I CMD...: CMD (an argument vector) in host I's namespaces.
run_on() {
    local i="$1"; shift
    # shellcheck disable=SC2016  # expanded by the inner sh
    ip netns exec "$PREFIX$i" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$PREFIX$i" "$@"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    up) up "$@" ;;
    down) down ;;
    status) status ;;
    hosts) hosts "$@" ;;
    exec)
        [ $# -ge 2 ] || usage 2
        i="$(host_index "$1")" || die "no host '$1' (is the cluster up?)"
        shift
        run_on "$i" "$@"
        ;;
    launcher) echo "$HERE/cluster-launch.sh" ;;
    env)
        # MPICH's hydra: reach the hosts with the launcher; its control port
        # on the bridge's address (the hosts cannot resolve this machine's
        # name). Open MPI: the launcher as its rsh agent.
        printf 'export HYDRA_LAUNCHER=ssh HYDRA_LAUNCHER_EXEC=%q HYDRA_IFACE=%q\n' \
            "$HERE/cluster-launch.sh" "$BRIDGE"
        printf 'export OMPI_MCA_plm_rsh_agent=%q\n' "$HERE/cluster-launch.sh"
        ;;
    -h|--help|help) usage 0 ;;
    *) usage 2 ;;
esac
