#!/bin/bash
# kill1.sh MPI [launcher flags]: single host; the leaver sleeps (as ferry's old process today),
# is SIGKILLed 1 s after the handover; does the job end with exit 0?
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"  # the repository
MPI=$1; shift
source $ROOT/scripts/mpi-env.sh $MPI >/dev/null
if [ $MPI = mpich ]; then B=./leave.mpich; else B=./leave.ompi; fi
timeout 60 $MPIEXEC $FERRY_MPIEXEC_FLAGS "$@" -n 3 $B sleep 30 >k.out 2>k.err &
J=$!
for i in $(seq 50); do P=$(grep -a "orig wrank 1 split" k.err | sed 's/.*pid \([0-9]*\).*/\1/'); [ -n "$P" ] && grep -qa "pid $P\] disconnected" k.err && break; sleep 0.2; done
sleep 1; echo "kill -9 leaver $P"; kill -9 $P
wait $J; echo "EXIT $?"; cat k.out; grep -av "split done\|disconnected" k.err | tail -5
