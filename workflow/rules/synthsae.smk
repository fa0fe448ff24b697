# The SynthSAEBench-style track (aenbench.synthetic.synthsae_track): a sae_lens.synthetic teacher
# (Zipfian firing, hierarchy, correlations) → train a family in one job → evaluate it → metrics from
# sae-lens's own synthetic evals plus ours.
SYNTHSAE = config.get("synthsae") or {}
SYNTHSAE_DATASET = SYNTHSAE.get("dataset", "synthsae-cpu")
SYNTHSAE_FAMILIES = SYNTHSAE.get("families", [])
SYNTHSAE_RUN_DIRS = [f"results/synthsae/runs/{f}" for f in SYNTHSAE_FAMILIES]
SYNTHSAE_BENCHMARKS = [f"benchmarks/synthsae/train_{f}.tsv" for f in SYNTHSAE_FAMILIES]


rule synthsae_teacher:
    output:
        model=directory("results/synthsae/teacher/model"),
        summary="results/synthsae/teacher/summary.json",
    params:
        spec=SYNTHSAE.get("spec", {}),
    log:
        "logs/synthsae/teacher.log",
    benchmark:
        "benchmarks/synthsae/teacher.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthsae_teacher.py"


rule synthsae_train:
    input:
        model="results/synthsae/teacher/model",
    output:
        trained=directory("results/synthsae/trained/{family}"),
    params:
        family=lambda w: config["families"][w.family],
        runs=lambda w: synthsae_family_runs(w.family),
        spec=SYNTHSAE.get("spec", {}),
        width=SYNTHSAE.get("width"),
        dataset=SYNTHSAE_DATASET,
        train=train_settings(SYNTHSAE.get("train", {})),
        arch_defaults=lambda w: arch_defaults_for(config["families"][w.family], synthsae_arch_defaults()),
        device=config["device"],
    log:
        "logs/synthsae/train_{family}.log",
    benchmark:
        "benchmarks/synthsae/train_{family}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthsae_train.py"


rule synthsae_eval:
    input:
        model="results/synthsae/teacher/model",
        trained="results/synthsae/trained/{family}",
    output:
        runs=directory("results/synthsae/runs/{family}"),
    params:
        spec=SYNTHSAE.get("spec", {}),
        width=SYNTHSAE.get("width"),
        dataset=SYNTHSAE_DATASET,
        evaluation=eval_settings(SYNTHSAE.get("train", {})),
        device=config["device"],
    log:
        "logs/synthsae/eval_{family}.log",
    benchmark:
        "benchmarks/synthsae/eval_{family}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthsae_eval.py"


rule table_synthsae:
    input:
        leaderboard="results/leaderboard.csv",
        summary="results/synthsae/teacher/summary.json",
    output:
        csv="figures/tables/synthsae_closest_to_true_l0.csv",
        md="figures/tables/synthsae_closest_to_true_l0.md",
        png=report(
            "figures/synthsae_dead_ev_vs_l0.png",
            caption="../report/synthsae_figure.rst",
            category="SynthSAEBench-style",
        ),
    params:
        families=SYNTHSAE_FAMILIES,
    log:
        "logs/figures/synthsae.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/table_synthsae.py"


SYNTHSAE_ARTEFACTS = (
    [
        "figures/tables/synthsae_closest_to_true_l0.csv",
        "figures/tables/synthsae_closest_to_true_l0.md",
        "figures/synthsae_dead_ev_vs_l0.png",
    ]
    if SYNTHSAE
    else []
)
