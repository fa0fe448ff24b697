# Figures and tables; figures/all depends on every one of them.


rule figure_synthetic_dead_ev_vs_l0:
    input:
        leaderboard="results/leaderboard.csv",
    output:
        png=report(
            "figures/synthetic_dead_ev_vs_l0.png",
            caption="../report/synthetic_dead_ev_vs_l0.rst",
            category="Synthetic",
        ),
    log:
        "logs/figures/synthetic_dead_ev_vs_l0.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_synthetic_dead_ev_vs_l0.py"


rule table_synthetic_teacher:
    input:
        diagnostics=expand(
            "results/synthetic/{dataset}/teacher/diagnostics.json", dataset=SYN_DATASETS
        ),
    output:
        csv=report(
            "figures/tables/synthetic_teacher_diagnostics.csv",
            caption="../report/synthetic_teacher_diagnostics.rst",
            category="Synthetic",
        ),
    log:
        "logs/figures/synthetic_teacher_diagnostics.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/table_synthetic_teacher.py"


SYNTHETIC_ARTEFACTS = (
    ["figures/synthetic_dead_ev_vs_l0.png", "figures/tables/synthetic_teacher_diagnostics.csv"]
    if SYN_DATASETS
    else []
)
ALL_ARTEFACTS = [
    "results/leaderboard.csv",
    *SYNTHETIC_ARTEFACTS,
    "results/metrics.yaml",
    *LLM_ARTEFACTS,
    *PROVENANCE_ARTEFACTS,
    *COMPARE_ARTEFACTS,
]


rule figures_all:
    input:
        ALL_ARTEFACTS,
    output:
        manifest="figures/all",
    log:
        "logs/figures/all.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/figures_all.py"
