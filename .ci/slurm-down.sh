#!/usr/bin/env bash
# Stop what .ci/slurm-up.sh started, by pid file, in reverse order, and remove the
# /etc/slurm/slurm.conf symlink. Usage: D=<dir> bash .ci/slurm-down.sh (safe to rerun).
D=${D:?}
for p in slurmd slurmctld slurmdbd mariadb munged; do
  f=$D/run/$p.pid; [ -f $f ] || continue
  pid=$(cat $f); kill "$pid" 2>/dev/null || true
  for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  rm -f $f
done
if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$D/etc/slurm.conf" ]; then rm -f /etc/slurm/slurm.conf; fi
true
