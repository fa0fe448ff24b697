# The leaderboard is rebuilt from every per-SAE metrics JSON; never appended to.

# the paper's reference tables (copies of ../shared/spec/*.csv), read from the checkout
PAPER_REFERENCE = sorted(
    str(p) for p in (Path(workflow.basedir) / "results" / "reference" / "paper").glob("*")
    if p.suffix in (".csv", ".yaml")
)


# what the leaderboard is built from; check_records reads the same
LEADERBOARD_INPUTS = dict(
    runs=[
        *(f"results/synthetic/{d}/runs/{f}" for d, f in SYN_PAIRS),
        *SYNTHSAE_RUN_DIRS,
        *LLM_RUN_DIRS,
    ],
    # parallel to runs: the benchmark file of the job that trained each folder
    benchmarks=[
        *(f"benchmarks/synthetic/{d}/train_{f}.tsv" for d, f in SYN_PAIRS),
        *SYNTHSAE_BENCHMARKS,
        *LLM_BENCHMARKS,
    ],
    # the spread folders (synthetic.spread) and, parallel to them, their jobs' benchmark files
    spread=[f"results/synthetic/{d}/spread" for d in SPREAD_DATASETS],
    spread_benchmarks=[f"benchmarks/synthetic/{d}/spread.tsv" for d in SPREAD_DATASETS],
    variant_runs=VARIANT_RUN_DIRS,
    variant_benchmarks=VARIANT_BENCHMARKS,
    reference=PAPER_REFERENCE,
)


# Checks every record (and benchmark / reference file) the leaderboard reads, and the whole build,
# in a job of its own: Snakemake deletes a job's outputs when it starts it, so a bad record found
# by the leaderboard job would cost the previous leaderboard.csv; found here, it leaves it.
rule check_records:
    input:
        **LEADERBOARD_INPUTS,
    output:
        checked="results/checked_records.json",
    log:
        "logs/check_records.log",
    benchmark:
        "benchmarks/check_records.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/check_records.py"


rule leaderboard:
    input:
        **LEADERBOARD_INPUTS,
        # the check's manifest: the leaderboard reads only the records it checked (by sha256)
        checked="results/checked_records.json",
    output:
        csv="results/leaderboard.csv",
        metrics=report(
            "results/metrics.yaml",
            caption="../report/metrics.rst",
            category="Leaderboard",
        ),
    log:
        "logs/leaderboard.log",
    benchmark:
        "benchmarks/leaderboard.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/leaderboard.py"
