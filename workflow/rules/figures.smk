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
        csv="figures/tables/synthetic_teacher_diagnostics.csv",
    log:
        "logs/figures/synthetic_teacher_diagnostics.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/table_synthetic_teacher.py"


rule figure_synthetic_rho:
    input:
        leaderboard="results/leaderboard.csv",
    output:
        png=report(
            "figures/synthetic/{dataset}_dead_ev_vs_l0.png",
            caption="../report/synthetic_rho_dead_ev_vs_l0.rst",
            category="Synthetic",
            subcategory="{dataset}",
        ),
    params:
        k=SYN.get("k"),
        families=SYN_FAMILIES,
    log:
        "logs/figures/synthetic_{dataset}_dead_ev_vs_l0.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_synthetic_rho.py"


rule table_synthetic_closest_to_k:
    input:
        leaderboard="results/leaderboard.csv",
    output:
        csv="figures/tables/synthetic/{dataset}_closest_to_k.csv",
        md="figures/tables/synthetic/{dataset}_closest_to_k.md",
    params:
        k=SYN.get("k"),
        families=SYN_FAMILIES,
    log:
        "logs/figures/synthetic_{dataset}_closest_to_k.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/table_synthetic_closest_to_k.py"


rule figure_synthetic_stability:
    input:
        leaderboard="results/leaderboard.csv",
    output:
        png=report(
            "figures/synthetic_stability_vs_rho.png",
            caption="../report/synthetic_stability_vs_rho.rst",
            category="Synthetic",
        ),
        csv="figures/tables/synthetic_stability.csv",
        md="figures/tables/synthetic_stability.md",
    params:
        k=SYN.get("k"),
        families=SYN_FAMILIES,
    log:
        "logs/figures/synthetic_stability_vs_rho.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_synthetic_stability.py"


rule figure_synthetic_adaptive_trace:
    input:
        leaderboard="results/leaderboard.csv",
    output:
        png=report(
            "figures/synthetic_adaptive_trace.png",
            caption="../report/synthetic_adaptive_trace.rst",
            category="Synthetic",
        ),
        csv="figures/tables/synthetic_adaptive_trace.csv",
    params:
        k=SYN.get("k"),
    log:
        "logs/figures/synthetic_adaptive_trace.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_synthetic_adaptive_trace.py"


rule table_synthetic_replication:
    input:
        # committed with the checkout (read from it, as PAPER_REFERENCE)
        ours=str(Path(workflow.basedir) / "results" / "reference" / "replication_ours.csv"),
        paper=str(Path(workflow.basedir) / "results" / "reference" / "paper" / "reference_synthetic_v1.csv"),
    output:
        csv="figures/tables/synthetic_replication.csv",
        md="figures/tables/synthetic_replication.md",
    log:
        "logs/figures/synthetic_replication.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/table_synthetic_replication.py"


rule table_claims:
    input:
        leaderboard="results/leaderboard.csv",
    output:
        csv="figures/tables/claims.csv",
        md="figures/tables/claims.md",
    params:
        k=SYN.get("k"),
        families=SYN_FAMILIES,
    log:
        "logs/figures/claims.log",
    benchmark:
        "benchmarks/figures/claims.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/table_claims.py"


rule table_claims_replication:
    # the same claims, scored on the committed paper-scale replication rows (AEN, ℓ1, sae-lens TopK)
    input:
        ours=str(Path(workflow.basedir) / "results" / "reference" / "replication_ours.csv"),
    output:
        csv="figures/tables/claims_replication.csv",
        md="figures/tables/claims_replication.md",
    params:
        # the paper-scale teacher (n, m, k) of configs/replication_synthetic.yaml, read when the
        # DAG is built: a param, not an input, so no checkout file has to be staged for a cluster
        scale=replication_scale(),
    log:
        "logs/figures/claims_replication.log",
    benchmark:
        "benchmarks/figures/claims_replication.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/table_claims_replication.py"


SYNTHETIC_ARTEFACTS = (
    [
        "figures/synthetic_dead_ev_vs_l0.png",
        "figures/tables/synthetic_teacher_diagnostics.csv",
        *expand("figures/synthetic/{dataset}_dead_ev_vs_l0.png", dataset=SYN_DATASETS),
        *expand("figures/tables/synthetic/{dataset}_closest_to_k.{ext}", dataset=SYN_DATASETS, ext=["csv", "md"]),
        "figures/synthetic_stability_vs_rho.png",
        "figures/synthetic_adaptive_trace.png",
        "figures/tables/synthetic_replication.md",
        "figures/tables/claims.csv",
        "figures/tables/claims.md",
        "figures/tables/claims_replication.md",
        *ABLATION_ARTEFACTS,
    ]
    if SYN_DATASETS
    else []
)
ALL_ARTEFACTS = [
    "results/leaderboard.csv",
    *SYNTHETIC_ARTEFACTS,
    *SYNTHSAE_ARTEFACTS,
    "results/metrics.yaml",
    *LLM_ARTEFACTS,
    *PROVENANCE_ARTEFACTS,
    *COMPARE_ARTEFACTS,
    *REPORT_TABLE_HTML,
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
