#!/usr/bin/env bash
# app-gromacs.sh: a real application under ferry: GROMACS (Debian's gmx_mpi,
# Open MPI) on a 3 nm box of SPC water, run plainly and under `ferry run`;
# the energies printed at the last step must be identical (-reprod -dlb no).
#
# Usage: scripts/app-gromacs.sh [--dir DIR] [--ranks N] [--ntomp T]
#          [--steps S] [--ferry BIN] [-- EXTRA...]
#   --dir DIR    work directory (default target/apps/gromacs)
#   --ranks N    MPI ranks (default 4); --ntomp T: OpenMP threads (default 1)
#   --steps S    MD steps (default 1000)
#   --ferry BIN  also run under `BIN run --mpi openmpi -n N EXTRA...`
#                (e.g. target/openmpi/release/ferry) and compare
#   --moves M    the ferry run must log exactly M migrate events
#   EXTRA        e.g. --migrate rank=1,after=5000
# Installs the gromacs package if gmx_mpi is missing (root, Debian 12).
# The case (conf.gro, em.gro, md-S.tpr) is prepared once; the plain run
# (plain-S-N-T.log) is reused when it finished. gmx output goes to the
# .out files of DIR. Exit 0: identical energies; 1: they differ or a run
# failed; 2: usage.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib-common.sh
. "$ROOT/scripts/lib-common.sh"
dir="$ROOT/target/apps/gromacs"
ranks=4 ntomp=1 steps=1000 ferry="" extra=() want_moves=""
usage() { printf '%s: %s\n' "$FERRY_SCRIPT" "$1" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dir|--ranks|--ntomp|--steps|--ferry|--moves)
      [ $# -ge 2 ] || usage "$1 needs a value" ;;&
    --dir) dir="$2"; shift ;;
    --ranks) ranks="$2"; shift ;;
    --ntomp) ntomp="$2"; shift ;;
    --steps) steps="$2"; shift ;;
    --ferry) ferry="$2"; shift ;;
    --moves) want_moves="$2"; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage "unknown argument $1 (see --help)" ;;
  esac
  shift
done
for v in "$ranks" "$ntomp" "$steps"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || usage "not a positive number: $v"
done
if [ -n "$ferry" ]; then
  [[ $ferry == */* ]] || ferry="$(command -v "$ferry" || echo "./$ferry")"
  [ -x "$ferry" ] || usage "no ferry command at $ferry: build it first (scripts/build.sh openmpi)"
  ferry="$(cd "$(dirname "$ferry")" && pwd)/$(basename "$ferry")"
fi
# The caller's FERRY_LIB only: mpi-env.sh's would override the library
# beside BIN (`ferry run` finds it there when FERRY_LIB is empty).
# shellcheck disable=SC2031  # lib-common.sh's subshell, not this shell
user_lib="${FERRY_LIB:-}"
# shellcheck source=scripts/mpi-env.sh
. "$ROOT/scripts/mpi-env.sh" openmpi

if ! command -v gmx_mpi >/dev/null; then
  say "installing Debian's gromacs package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y gromacs >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y gromacs >/dev/null; } \
    || die "apt-get install gromacs failed"
fi
mkdir -p "$dir"
cd "$dir"
dir="$(pwd)"
export GMX_MAXBACKUP=-1 OMP_NUM_THREADS="$ntomp"

# timed NAME LOG CMD...: runs CMD, its output to LOG, and prints one line
# with NAME and the seconds it took.
timed() {
  local name="$1" log="$2" t0 t1; shift 2
  t0=$(date +%s.%N)
  "$@" >"$log" 2>&1 || die "$name failed (exit $?): see $dir/$log"
  t1=$(date +%s.%N)
  say "$(awk -v a="$t0" -v b="$t1" -v n="$name" 'BEGIN { printf "%-24s %7.1f s", n, b - a }')"
}
# energies LOG: the energy block printed at step $steps in an mdrun log.
energies() {
  awk -v s="$steps" '
    /^ +Step +Time$/ { getline; at = ($1 == s); next }
    at && /^ +Energies \(kJ\/mol\)$/ { on = 1; next }
    on && /^[[:space:]]*$/ { exit }
    on { print }' "$1"
}
finished() { [ -f "$1" ] && grep -q '^Finished mdrun' "$1" && [ -n "$(energies "$1")" ]; }

if [ ! -f em.gro ]; then
  printf '#include "oplsaa.ff/forcefield.itp"\n#include "oplsaa.ff/spc.itp"\n[ system ]\nwater\n[ molecules ]\n' >topol.top
  timed "solvate" solvate.out gmx solvate -cs spc216.gro -box 3 3 3 -o conf.gro -p topol.top
  printf 'integrator=steep\nnsteps=500\ncutoff-scheme=Verlet\ncoulombtype=PME\nrcoulomb=1.0\nrvdw=1.0\n' >em.mdp
  timed "grompp em" grompp-em.out gmx grompp -f em.mdp -c conf.gro -p topol.top -o em.tpr -maxwarn 5
  timed "mdrun em (1 thread)" mdrun-em.out gmx mdrun -s em.tpr -deffnm em -nt 1
fi
tpr="md-$steps.tpr"
if [ ! -f "$tpr" ]; then
  cat >"md-$steps.mdp" <<EOF
integrator     = md
dt             = 0.002
nsteps         = $steps
nstlog         = 200
nstenergy      = 200
nstcalcenergy  = 100
cutoff-scheme  = Verlet
coulombtype    = PME
rcoulomb       = 1.0
rvdw           = 1.0
tcoupl         = v-rescale
tc-grps        = System
tau-t          = 0.1
ref-t          = 300
constraints    = h-bonds
gen-vel        = yes
gen-temp       = 300
gen-seed       = 42
EOF
  timed "grompp md ($steps steps)" "grompp-md-$steps.out" \
    gmx grompp -f "md-$steps.mdp" -c em.gro -p topol.top -o "md-$steps.tmp.tpr" -maxwarn 5
  mv "md-$steps.tmp.tpr" "$tpr"
fi
mdrun=(gmx_mpi mdrun -s "$tpr" -ntomp "$ntomp" -reprod -dlb no -npme 0)
cfg="$steps-$ranks-$ntomp"
if finished "plain-$cfg.log"; then
  say "plain run: reusing $dir/plain-$cfg.log"
else
  # shellcheck disable=SC2086  # the flags are a word list on purpose
  timed "plain ($ranks ranks, $ntomp thr)" "plain-$cfg.out" "$MPIEXEC" --allow-run-as-root \
    $FERRY_MPIEXEC_FLAGS -np "$ranks" "${mdrun[@]}" -deffnm "plain-$cfg"
fi
[ -n "$ferry" ] || { say "no --ferry: plain reference only"; energies "plain-$cfg.log"; exit 0; }

rm -f ferry-events.jsonl "ferry-$cfg".*
FERRY_LIB="$user_lib"
timed "ferry ($ranks ranks, $ntomp thr)" "ferry-$cfg.out" \
  "$ferry" run --mpi openmpi -n "$ranks" --events ferry-events.jsonl "${extra[@]}" \
  -- "${mdrun[@]}" -deffnm "ferry-$cfg"
moves=0
[ -f ferry-events.jsonl ] && moves="$(grep -c '"event":"migrate"' ferry-events.jsonl || true)"
say "migrate events in $dir/ferry-events.jsonl: $moves"
if [ -n "$want_moves" ] && [ "$moves" != "$want_moves" ]; then
  echo "gromacs: $moves migrate event(s), $want_moves expected; ferry's messages:"
  grep -a 'ferry' "ferry-$cfg.out" | head -n 20
  exit 1
fi
plain="$(energies "plain-$cfg.log")" ferried="$(energies "ferry-$cfg.log")"
if [ -n "$plain" ] && [ "$plain" = "$ferried" ]; then
  echo "gromacs: energies at step $steps identical ($ranks ranks, $ntomp threads)"
  exit 0
fi
printf 'gromacs: energies at step %s differ (%s ranks, %s threads)\n' "$steps" "$ranks" "$ntomp"
printf -- '--- plain (%s)\n%s\n--- ferry (%s)\n%s\n' "$dir/plain-$cfg.log" "$plain" \
  "$dir/ferry-$cfg.log" "${ferried:-(no energies at step $steps)}"
exit 1
