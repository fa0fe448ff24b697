# The tables of `snakemake --report`: the report shows an .html output inline but offers a CSV
# only as a download, so each table CSV is attached as an HTML rendering of it (direction arrows
# from aenbench.metric_registry in the header, "mean [min, max]" cells, aenbench.report_tables)
# in the category (and subcategory) the CSV had; the CSV stays a plain output of its rule.
# Included after the stages (it reads their switches) and before figures.smk (figures/all
# depends on REPORT_TABLE_HTML).

# name -> the CSV, the HTML title (wildcards filled in), the report caption, category, subcategory
# and, for a wide table, the name of the metric_registry column list its page shows
REPORT_TABLES = {
    "leaderboard": dict(
        csv="results/leaderboard.csv",
        title="Leaderboard: one row per SAE and seed (ours) and the paper's reference rows",
        caption="leaderboard.rst",
        category="Leaderboard",
        # the keys and the metrics of aenbench.metric_registry.COLUMN_LISTS["leaderboard"] (with the
        # paper rows' spread); the CSV has every column
        columns="leaderboard",
    ),
    "provenance_versions": dict(
        csv="results/provenance/versions.csv",
        title="Software versions of this report and of the leaderboard's rows",
        caption="provenance_versions.rst",
        category="Provenance",
    ),
    "synthetic_teacher_diagnostics": dict(
        csv="figures/tables/synthetic_teacher_diagnostics.csv",
        title="Spiked teachers: diagnostics per coherence ρ",
        caption="synthetic_teacher_diagnostics.rst",
        category="Synthetic",
    ),
    "synthetic_closest_to_k": dict(
        csv="figures/tables/synthetic/{dataset}_closest_to_k.csv",
        title="T-syn, {dataset}: per family the run with L0 closest to the teacher's k",
        caption="synthetic_closest_to_k.rst",
        category="Synthetic",
        subcategory="{dataset}",
    ),
    "synthetic_replication": dict(
        csv="figures/tables/synthetic_replication.csv",
        title="Replication: our paper-scale runs beside the authors' numbers",
        caption="synthetic_replication.rst",
        category="Synthetic",
    ),
    "synthsae": dict(
        csv="figures/tables/synthsae_closest_to_true_l0.csv",
        title="SynthSAEBench-style: per family the run with L0 closest to the teacher's true L0",
        caption="synthsae_table.rst",
        category="SynthSAEBench-style",
    ),
    "llm_target_l0": dict(
        csv="figures/tables/llm_target_l0.csv",
        title="LLM: per family and target L0 the configuration with the closest seed-mean L0",
        caption="llm_target_l0.rst",
        category="LLM",
    ),
    "compare": dict(
        csv="results/compare/{variant}.csv",
        title="Variant {variant} against the families at matched L0",
        caption="compare_csv.rst",
        category="Variants",
        subcategory="{variant}",
    ),
}


def report_table_stem(name):
    """The CSV path of REPORT_TABLES[name] without .csv (wildcards kept)."""
    return REPORT_TABLES[name]["csv"].removesuffix(".csv")


def report_table_html(name):
    """The HTML path of REPORT_TABLES[name]: beside its CSV."""
    return f"{report_table_stem(name)}.html"


# the HTML tables of this config: those whose CSV is built
REPORT_TABLE_HTML = [
    report_table_html("leaderboard"),
    report_table_html("provenance_versions"),
    *(
        [
            report_table_html("synthetic_teacher_diagnostics"),
            *expand(report_table_html("synthetic_closest_to_k"), dataset=SYN_DATASETS),
            report_table_html("synthetic_replication"),
        ]
        if SYN_DATASETS
        else []
    ),
    *([report_table_html("synthsae")] if SYNTHSAE else []),
    *([report_table_html("llm_target_l0")] if REPORT_TABLES["llm_target_l0"]["csv"] in LLM_ARTEFACTS else []),
    *expand(report_table_html("compare"), variant=VARIANTS),
]


for _name, _table in REPORT_TABLES.items():

    rule:
        name:
            f"html_{_name}"
        input:
            csv=_table["csv"],
        output:
            html=report(
                report_table_html(_name),
                caption=f"../report/{_table['caption']}",
                category=_table["category"],
                subcategory=_table.get("subcategory"),
            ),
        params:
            title=_table["title"],
            columns=_table.get("columns", ""),
        log:
            f"logs/report/{report_table_stem(_name)}.log",
        benchmark:
            f"benchmarks/report/{report_table_stem(_name)}.tsv"
        localrule: True
        conda:
            "../../environment.yml"
        script:
            "../scripts/table_html.py"
