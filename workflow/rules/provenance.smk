# Provenance for the report: the resolved config (schema defaults filled in) and the software
# versions, next to the per-row sae-lens / torch versions and git commits of the leaderboard.
PROVENANCE_ARTEFACTS = ["results/provenance/config.yaml", "results/provenance/versions.csv"]


rule provenance:
    input:
        leaderboard="results/leaderboard.csv",
    output:
        config=report(
            "results/provenance/config.yaml",
            caption="../report/provenance_config.rst",
            category="Provenance",
        ),
        versions="results/provenance/versions.csv",
    params:
        config=config,
    log:
        "logs/provenance.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/provenance.py"
