"""results/compare/<variant>.{md,html,csv} and figures/compare/<variant>_pareto.png."""
import os

from aenbench.jobs import setup_job

setup_job(snakemake)  # noqa: F821

from aenbench import leaderboard as L  # noqa: E402
from aenbench import metric_registry as R  # noqa: E402
from aenbench.compare import matching as C  # noqa: E402
from aenbench.compare import report  # noqa: E402
from aenbench.io import write_text, write_with  # noqa: E402
from aenbench.report_tables import markdown_html  # noqa: E402

smk = snakemake  # noqa: F821
name, cmp, train = smk.params.name, smk.params.compare, smk.params.train
directions, meanings = R.directions(), R.meanings()

rows = L.combine([L.build(smk.input.variant, kind="variant"), L.build(smk.input.families, kind="family")])
problems = C.budget_problems(rows)
budget = train["steps"] * train["batch_size"]
if set(rows["samples_seen"]) != {budget}:
    problems.append(f"samples_seen {sorted(set(rows['samples_seen']))} != steps × batch_size = {budget}")
if problems:
    raise RuntimeError("the rows to compare were not trained alike:\n  - " + "\n  - ".join(problems))
unknown = [m for m in cmp["metrics"] if m not in rows.columns]
if unknown:
    raise ValueError(f"variants.{name}.compare.metrics: no such metric(s) {unknown}; known: {sorted(R.METRICS)}")

metrics = list(dict.fromkeys([*C.default_metrics(rows, directions), *cmp["metrics"]]))
table = C.matched_l0(rows, name, directions, against=cmp["families"], datasets=cmp["datasets"], metrics=metrics,
                     l0_tolerance=cmp["l0_tolerance"])
write_with(smk.output.csv, lambda tmp: table.to_csv(tmp, index=False))
report.pareto_plot(rows, name, cmp["families"], smk.output.png, directions)

here = os.path.dirname(smk.output.md)
text = report.render_report(
    name, table, directions, meanings,
    metrics=cmp["metrics"],
    variant=smk.params.variant,
    against=cmp["families"],
    datasets=cmp["datasets"],
    budget={
        "track": cmp["track"],
        "steps": train["steps"],
        "batch_size": train["batch_size"],
        "samples_seen": train["steps"] * train["batch_size"],
        "seeds": ", ".join(map(str, train["seeds"])),
        "n_seeds": len(train["seeds"]),
    },
    figure=os.path.relpath(smk.output.png, here),
    csv=os.path.relpath(smk.output.csv, here),
    l0_tolerance=cmp["l0_tolerance"],
)
write_text(smk.output.md, text)
write_text(smk.output.html, markdown_html(text, f"Variant {name} against the leaderboard", base_dir=here))
print(text)
