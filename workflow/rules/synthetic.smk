# Synthetic track: spiked teacher per ρ, then every SAE of a family trained in one job
# (one sae-lens import per family instead of per SAE; see bench/ for the measurement).


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
        runs=directory("results/synthetic/{dataset}/runs/{family}"),
    params:
        family_name=lambda w: w.family,
        family=lambda w: config["families"][w.family],
        runs=lambda w: family_runs(w.family),
        spec=lambda w: synthetic_spec(w.dataset),
        train=SYN.get("train"),
        arch_defaults=config["arch_defaults"],
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
