#!/bin/bash
# withcluster.sh CMD...: takes the harness's lock, brings the cluster up, runs CMD, brings it down.
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"  # the repository
exec 9>/tmp/ferry-cluster.lock
flock -w 600 9 || { echo "no lock"; exit 1; }
$ROOT/scripts/cluster.sh up 4 >/dev/null
"$@"
rc=$?
$ROOT/scripts/cluster.sh down >/dev/null
exit $rc
