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


# --- the seed / teacher spread of each family's selected configuration (synthetic.spread)


rule synthetic_teacher_replicate:
    output:
        dictionary="results/synthetic/{dataset}/teacher-d{dseed}/dictionary.safetensors",
        diagnostics="results/synthetic/{dataset}/teacher-d{dseed}/diagnostics.json",
    params:
        spec=lambda w: {**synthetic_spec(w.dataset), "dictionary_seed": int(w.dseed)},
    log:
        "logs/synthetic/{dataset}/teacher-d{dseed}.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/teacher-d{dseed}.tsv"
    wildcard_constraints:
        dseed=r"\d+",
    threads: 1
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthetic_teacher.py"


rule synthetic_spread:
    # one job per ρ for all its families: one sae-lens import instead of one per family; the
    # store makes it incremental (a family whose selection did not change reuses its replicates)
    input:
        dictionary="results/synthetic/{dataset}/teacher/dictionary.safetensors",
        teachers=lambda w: [f"results/synthetic/{w.dataset}/teacher-d{d}/dictionary.safetensors"
                            for d in SPREAD.get("dictionary_seeds", [])],
        runs=lambda w: [f"results/synthetic/{w.dataset}/runs/{f}" for d, f in SPREAD_PAIRS if d == w.dataset],
    output:
        spread=directory("results/synthetic/{dataset}/spread"),
    params:
        families=lambda w: {f: config["families"][f] for d, f in SPREAD_PAIRS if d == w.dataset},
        runs=lambda w: {f: family_runs(f) for d, f in SPREAD_PAIRS if d == w.dataset},
        spec=lambda w: teacher_spec(w.dataset),
        train=train_settings(SYN.get("train", {})),
        evaluation=eval_settings(SYN.get("train", {})),
        arch_defaults=lambda w: {f: arch_defaults_for(config["families"][f]) for d, f in SPREAD_PAIRS
                                 if d == w.dataset},
        seeds=SPREAD.get("seeds", []),
        dictionary_seeds=SPREAD.get("dictionary_seeds", []),
        device=config["device"],
    log:
        "logs/synthetic/{dataset}/spread.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/spread.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthetic_spread.py"
