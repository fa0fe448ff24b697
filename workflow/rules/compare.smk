# Comparing a new SAE variant (config `variants:`) with the leaderboard families.
#
#   snakemake results/compare/<variant>.md --cores all
#
# trains the variant on the same spiked teachers, seeds and budget (synthetic.train) as the
# families it is compared with, evaluates it the same way, then writes the matched-L0 report, its
# CSV and a Pareto plot.
# Helpers: compare_common.smk.


include: "compare_common.smk"


wildcard_constraints:
    variant="|".join(re.escape(v) for v in VARIANTS) or "(?!)",


rule variant_train:
    input:
        dictionary="results/synthetic/{dataset}/teacher/dictionary.safetensors",
        plugin=lambda w: [variant_plugin(w.variant)] if variant_plugin(w.variant) else [],
    output:
        trained=directory("results/synthetic/{dataset}/variants_trained/{variant}"),
    params:
        family=lambda w: variant_definition(w.variant),
        runs=lambda w: variant_runs(w.variant),
        spec=lambda w: teacher_spec(w.dataset),
        train=train_settings(SYN.get("train", {})),
        arch_defaults=lambda w: arch_defaults_for(VARIANTS[w.variant]),
        device=config["device"],
    log:
        "logs/synthetic/{dataset}/variant_{variant}.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/variant_{variant}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthetic_train.py"


rule variant_eval:
    input:
        dictionary="results/synthetic/{dataset}/teacher/dictionary.safetensors",
        trained="results/synthetic/{dataset}/variants_trained/{variant}",
        plugin=lambda w: [variant_plugin(w.variant)] if variant_plugin(w.variant) else [],
    output:
        runs=directory("results/synthetic/{dataset}/variants/{variant}"),
    params:
        architecture=lambda w: VARIANTS[w.variant]["architecture"],
        spec=lambda w: teacher_spec(w.dataset),
        evaluation=eval_settings(SYN.get("train", {})),
        device=config["device"],
    log:
        "logs/synthetic/{dataset}/variant_eval_{variant}.log",
    benchmark:
        "benchmarks/synthetic/{dataset}/variant_eval_{variant}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../environment.yml"
    script:
        "../scripts/synthetic_eval.py"


rule compare_report:
    input:
        variant=lambda w: expand(
            "results/synthetic/{dataset}/variants/{variant}",
            dataset=variant_compare(w.variant)["datasets"],
            variant=w.variant,
        ),
        families=lambda w: expand(
            "results/synthetic/{dataset}/runs/{family}",
            dataset=variant_compare(w.variant)["datasets"],
            family=variant_compare(w.variant)["families"],
        ),
    output:
        md="results/compare/{variant}.md",
        html=report(
            "results/compare/{variant}_report.html",
            caption="../report/compare_report.rst",
            category="Variants",
            subcategory="{variant}",
        ),
        csv="results/compare/{variant}.csv",
        png=report(
            "figures/compare/{variant}_pareto.png",
            caption="../report/compare_pareto.rst",
            category="Variants",
            subcategory="{variant}",
        ),
    params:
        name=lambda w: w.variant,
        variant=lambda w: variant_definition(w.variant, keys=("architecture", "fixed", "grid", "plugin", "description")),
        compare=lambda w: variant_compare(w.variant),
        train=SYN.get("train"),
    log:
        "logs/compare/{variant}.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/compare_report.py"
