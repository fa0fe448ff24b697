#!/usr/bin/env bash
# Real-SLURM test of workflow/profiles/slurm (README, "Running on a cluster"). As root, on a
# Debian/Ubuntu machine with apt: brings up a single-node SLURM on localhost with accounting
# (.ci/slurm-up.sh, slurmdbd + MariaDB, so that sacct works), runs the smoke DAG through
# `snakemake --executor slurm --profile workflow/profiles/slurm` in one temporary working
# directory and locally in another, checks that the two leaderboards are equal on every column
# but the timing / memory / path ones, prints squeue and sacct for the jobs, and tears the
# cluster down (always, by trap). Not part of .ci/run: about 10 minutes on the 2-core machine.
#
#   bash .ci/slurm-test.sh            # KEEP=1 keeps the temporary folder (its path is printed)
#
# Needs the repository's .venv (scripts/install.sh); installs the SLURM executor plugin into it
# when missing. ACCT=0 runs it without slurmdbd/MariaDB (status from squeue, no sacct).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${VENV:-$REPO/.venv}/bin   # VENV=<venv> to use another one (its aenbench must be this checkout's)
[ "$(id -u)" = 0 ] || { echo "slurm-test: run as root (it starts munged, slurmctld, slurmd, slurmdbd)" >&2; exit 2; }
[ -x "$PY/snakemake" ] || { echo "slurm-test: no $PY/snakemake; run scripts/install.sh first" >&2; exit 2; }

T=$(mktemp -d /tmp/aenbench-slurm.XXXXXX)
chmod 711 "$T"   # munged wants every directory above its socket searchable
export D=$T/cluster ACCT=${ACCT:-1}
cleanup() {
  rc=$?
  set +e
  echo "== tearing the cluster down"
  bash "$REPO/.ci/slurm-down.sh"
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
head0=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || true)
"$PY/python" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || "$PY/pip" install -q "snakemake-executor-plugin-slurm>=2.8,<3"

echo "== SLURM up (ACCT=$ACCT)"
bash "$REPO/.ci/slurm-up.sh"
export SLURM_CONF=$D/etc/slurm.conf PATH=$PY:$PATH
t_up=$((SECONDS - t0))

# Snakemake 9 + the slurm plugin can wait forever when status queries fail (and ignore
# SIGTERM), hence timeout -s KILL. The last flags are for this test cluster only: no account,
# fast polling; without accounting (ACCT=0) the status must come from squeue.
status=()
[ "$ACCT" = 1 ] || status=(--slurm-status-command squeue)
echo "== smoke DAG through SLURM"
t1=$SECONDS
cd "$T"
timeout -s KILL "${SLURM_TIMEOUT:-1800}" "$PY/snakemake" figures/all \
  --executor slurm --profile "$REPO/workflow/profiles/slurm" --jobs 2 \
  --slurm-no-account "${status[@]}" \
  --slurm-init-seconds-before-status-checks 1 --seconds-between-status-checks 1 \
  -s "$REPO/Snakefile" -d "$T/slurm" --configfile "$REPO/configs/smoke.yaml" \
  > "$T/slurm.log" 2>&1 || { rc=$?; tail -60 "$T/slurm.log"; echo "slurm-test: SLURM run failed (rc $rc)"; exit 1; }
t_slurm=$((SECONDS - t1))
grep -E "steps \(100%\) done" "$T/slurm.log"

echo "== squeue (jobs finished in the last MinJobAge=300 s)"
squeue --states=all -o '%.5i %.10T %.10M %.5C %.8m %.20k %j'
if [ "$ACCT" = 1 ]; then
  echo "== sacct"
  sacct -X -o JobID,Comment%34,State,ExitCode,Elapsed,AllocCPUS,ReqMem,Start,End
fi

echo "== smoke DAG locally"
t2=$SECONDS
timeout -s KILL "${LOCAL_TIMEOUT:-1200}" "$PY/snakemake" figures/all --cores 2 \
  -s "$REPO/Snakefile" -d "$T/local" --configfile "$REPO/configs/smoke.yaml" \
  > "$T/local.log" 2>&1 || { rc=$?; tail -60 "$T/local.log"; echo "slurm-test: local run failed (rc $rc)"; exit 1; }
t_local=$((SECONDS - t2))

echo "== leaderboards"
# git_commit is compared too, unless the checkout got a new commit between the two runs
same_head=1
[ "$(git -C "$REPO" rev-parse HEAD 2>/dev/null || true)" = "$head0" ] || same_head=0
SAME_HEAD=$same_head "$PY/python" - "$T/slurm/results/leaderboard.csv" "$T/local/results/leaderboard.csv" <<'EOF'
import os
import sys
import pandas as pd

a, b = (pd.read_csv(p) for p in sys.argv[1:3])
skipped = ["train_seconds", "job_*", "metrics_path"]
if os.environ["SAME_HEAD"] != "1":
    skipped.append("git_commit")
    print("note: HEAD moved during the test (a commit in between); git_commit not compared")
skip = lambda c: c in skipped or (c.startswith("job_") and "job_*" in skipped)
assert list(a.columns) == list(b.columns), f"columns differ: {set(a.columns) ^ set(b.columns)}"
cols = [c for c in a.columns if not skip(c)]
a, b = a[cols], b[cols]
assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
bad = [c for c in cols if not a[c].equals(b[c])]
if bad:
    for c in bad:
        diff = a[c].ne(b[c]) & ~(a[c].isna() & b[c].isna())
        print(c, "slurm:", a.loc[diff, c].tolist()[:5], "local:", b.loc[diff, c].tolist()[:5])
    sys.exit(f"slurm-test: leaderboards differ in {len(bad)} column(s): {bad}")
ours = a[a["source"] == "ours"]
print(f"leaderboards equal: {len(a)} rows ({len(ours)} trained here), {len(cols)} of "
      f"{len(cols) + sum(map(skip, pd.read_csv(sys.argv[1]).columns))} columns compared "
      f"(not: {', '.join(skipped)})")
EOF

echo "slurm-test: PASS (cluster up ${t_up} s, SLURM run ${t_slurm} s, local run ${t_local} s, total $((SECONDS - t0)) s)"
