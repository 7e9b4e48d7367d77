#!/bin/bash
# mh.sh MPI MODE KILLHOST [extra launcher flags...]: run under the cluster lock.
# 3 ranks on ferry-h1..h3 (one each), child spawned on ferry-h4, rank 1 (on h2)
# leaves (MODE), then at t=3s everything in KILLHOST's netns is SIGKILLed and
# its link cut. Prints per-host process list before the kill and mpiexec status.
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"  # the repository
MPI=$1; MODE=$2; KH=$3; shift 3
C=$ROOT/scripts/cluster.sh
source $ROOT/scripts/mpi-env.sh $MPI >/dev/null
eval "$($C env)"
export LEAVE_TARGET=ferry-h4 LEAVE_BACK=ferry-h2
if [ $MPI = mpich ]; then
  CMD=($MPIEXEC "$@" -hosts ferry-h1,ferry-h2,ferry-h3 -n 3 ./leave3.mpich $MODE 60)
else
  CMD=($MPIEXEC $FERRY_MPIEXEC_FLAGS "$@" --host ferry-h1,ferry-h2,ferry-h3,ferry-h4 -n 3 ./leave3.ompi $MODE 60)
fi
echo "CMD: ${CMD[*]}"
timeout -s KILL 90 "${CMD[@]}" > out.$$ 2> err.$$ &
J=$!
sleep 3
for h in 1 2 3 4; do echo "-- ferry-h$h:"; for p in $(ip netns pids ferry-h$h); do ps -o pid=,ppid=,args= -p $p | cut -c1-150; done; done
if [ "$KH" != none ]; then
  echo "KILL all in $KH and cut link at $(date +%T.%N)"
  kill -9 $(ip netns pids $KH) 2>/dev/null; ip link set $KH-v down
fi
wait $J; RC=$?
echo "--- stdout:"; cat out.$$; echo "--- stderr:"; grep -av "split done\|disconnected" err.$$ | tail -25; echo "EXIT $RC"
rm -f out.$$ err.$$
[ "$KH" != none ] && ip link set $KH-v up
