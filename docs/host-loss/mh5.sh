#!/bin/bash
# mh5.sh MODE KILLHOST [mpirun flags]: as mh.sh, with Open MPI 5.0.11 (PRRTE 3.0.14) from the PyPI wheel in ${R18:-$PWD}/ompi5
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"  # the repository
MODE=$1; KH=$2; shift 2
source ${R18:-$PWD}/ompi5-env.sh
export LEAVE_TARGET=ferry-h4 LEAVE_FREE_MERGED=1 OMPI_MCA_async_mpi_finalize=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=tcp,self
CMD=(mpirun --oversubscribe --prtemca plm_ssh_agent $ROOT/scripts/cluster-launch.sh "$@" --host ferry-h1:1,ferry-h2:1,ferry-h3:1,ferry-h4:1 -n 3 ./leave.ompi5 $MODE 60)
echo "CMD: ${CMD[*]}"
timeout -s KILL 60 "${CMD[@]}" > out.$$ 2> err.$$ &
J=$!
sleep 4
for h in 1 2 3 4; do echo "-- ferry-h$h:"; for p in $(ip netns pids ferry-h$h); do ps -o pid=,ppid=,args= -p $p | cut -c1-110; done; done
if [ "$KH" != none ]; then
  echo "KILL all in $KH and cut link at $(date +%T.%N)"
  kill -9 $(ip netns pids $KH) 2>/dev/null; ip link set $KH-v down
fi
wait $J; RC=$?
echo "--- stdout:"; cat out.$$; echo "--- stderr:"; grep -av "split done\|disconnected" err.$$ | tail -25; echo "EXIT $RC"
rm -f out.$$ err.$$
[ "$KH" != none ] && ip link set $KH-v up
# kill leftover prted of this run (started by us) if any
