# Synthetic track: spiked teacher per ρ → train (SAEs only) → evaluate (a metrics JSON per SAE).
# One job per (ρ, family) and stage: one sae-lens import per family instead of per SAE; a per-run
# store (aenbench.stages) keeps every trained SAE and every evaluation, so a rerun computes only
# the runs whose settings changed.


rule synthetic_teacher:
    output:
        dictionary="results/synthetic/{dataset}/teacher/dictionary.safetensors",
        diagnostics="results/synthetic/{dataset}/teacher/diagnostics.json",
    params:
        spec=lambda w: synthetic_spec(w.dataset),
    log:
        "logs/synthetic/{dataset}/teacher.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/teacher.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthetic_teacher.py"


rule synthetic_train:
    input:
        dictionary="results/synthetic/{dataset}/teacher/dictionary.safetensors",
    output:
        trained=directory("results/synthetic/{dataset}/trained/{family}"),
    params:
        family=lambda w: config["families"][w.family],
        runs=lambda w: family_runs(w.family),
        spec=lambda w: teacher_spec(w.dataset),
        train=train_settings(SYN.get("train", {})),
        arch_defaults=lambda w: arch_defaults_for(config["families"][w.family]),
        device=config["device"],
    log:
        "logs/synthetic/{dataset}/train_{family}.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/train_{family}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthetic_train.py"


rule synthetic_eval:
    input:
        dictionary="results/synthetic/{dataset}/teacher/dictionary.safetensors",
        trained="results/synthetic/{dataset}/trained/{family}",
    output:
        runs=directory("results/synthetic/{dataset}/runs/{family}"),
    params:
        spec=lambda w: teacher_spec(w.dataset),
        evaluation=eval_settings(SYN.get("train", {})),
        device=config["device"],
    log:
        "logs/synthetic/{dataset}/eval_{family}.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/eval_{family}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthetic_eval.py"
