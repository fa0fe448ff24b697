# The paper-scale replication runs (configs/replication_synthetic.yaml): export our rows at the
# reference configurations; the committed copy results/reference/replication_ours.csv feeds
# figures/tables/synthetic_replication.* (figures.smk) in every config.
REPLICATION = config.get("replication") or {}


if REPLICATION:

    rule replication_export:
        input:
            leaderboard="results/leaderboard.csv",
        output:
            csv="results/replication/metrics.csv",
        params:
            families=REPLICATION["families"],
        log:
            "logs/replication/export.log",
        conda:
            "../../environment.yml"
        script:
            "../scripts/replication_export.py"
