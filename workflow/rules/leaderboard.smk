# The leaderboard is rebuilt from every per-SAE metrics JSON; never appended to.


rule leaderboard:
    input:
        runs=expand(
            "results/synthetic/{dataset}/runs/{family}",
            dataset=SYN_DATASETS,
            family=SYN_FAMILIES,
        ),
    output:
        csv="results/leaderboard.csv",
    log:
        "logs/leaderboard.log",
    benchmark:
        "benchmarks/leaderboard.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/leaderboard.py"
