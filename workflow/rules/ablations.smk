# Ablations of the AEN recipe (aenbench.synthetic.ablations): every ablation of the config is a
# named target, `snakemake ablation_<name> --cores`, that trains its arms and draws its summary.
ABLATIONS = config.get("ablations") or {}


rule ablation_train:
    input:
        dictionary="results/synthetic/{dataset}/teacher/dictionary.safetensors",
    output:
        trained=directory("results/synthetic/{dataset}/ablations_trained/{ablation}"),
    params:
        definition=lambda w: ablation_training(w.ablation),
        seeds=SYN.get("train", {}).get("seeds"),
        spec=lambda w: teacher_spec(w.dataset),
        train=train_settings(SYN.get("train", {})),
        arch_defaults=lambda w: arch_defaults_for(config["families"][ABLATIONS[w.ablation]["base"]]),
        device=config["device"],
    log:
        "logs/synthetic/{dataset}/ablation_{ablation}.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/ablation_{ablation}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/ablation_train.py"


rule ablation_eval:
    input:
        dictionary="results/synthetic/{dataset}/teacher/dictionary.safetensors",
        trained="results/synthetic/{dataset}/ablations_trained/{ablation}",
    output:
        runs=directory("results/synthetic/{dataset}/ablations/{ablation}"),
    params:
        arms=lambda w: list(ABLATIONS[w.ablation]["arms"]),
        spec=lambda w: teacher_spec(w.dataset),
        evaluation=eval_settings(SYN.get("train", {})),
        device=config["device"],
    log:
        "logs/synthetic/{dataset}/ablation_eval_{ablation}.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/ablation_eval_{ablation}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/ablation_eval.py"


rule ablation_summary:
    input:
        runs=lambda w: ablation_run_dirs(w.ablation),
    output:
        csv="figures/ablations/{ablation}.csv",
        md="figures/ablations/{ablation}.md",
        png=report(
            "figures/ablations/{ablation}.png",
            caption="../report/ablation.rst",
            category="Ablations",
        ),
    params:
        ablation=lambda w: ABLATIONS[w.ablation],
    log:
        "logs/figures/ablation_{ablation}.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/ablation_summary.py"


ABLATION_ARTEFACTS = [path for name in ABLATIONS for path in ablation_artefacts(name)]


for _name in ABLATIONS:

    rule:
        name:
            f"ablation_{_name}"
        input:
            ablation_artefacts(_name),
        localrule: True
        default_target: False
