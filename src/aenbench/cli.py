"""``aenbench``: read results/leaderboard.csv in the terminal, no DAG rerun.

    aenbench leaderboard --track synthetic --dataset rho0.5 --sort dead_pct
    aenbench compare L1-resample                 # a variant (or a family) vs the families, matched L0
    aenbench metrics                             # every metric, its meaning and direction

Reads the CSV (and ``metrics.yaml`` next to it for the metric directions) with pandas only;
pandas is imported by the commands, so ``aenbench --help`` answers at once.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from aenbench import metric_registry as R

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_FILE = "results/leaderboard.csv"
# the columns that tell rows apart; `--columns` without them gets those that differ between the shown rows
IDENTITY_COLUMNS = ["source", "track", "dataset", "scale"]
DEFAULT_COLUMNS = [
    "source", "kind", "track", "dataset", "scale", "family", "params", "seed",
    *R.column_list("cli"), "train_seconds", "job_wall_s", "job_max_rss_mb",
]


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


def _split(values: Sequence[str] | None) -> list[str] | None:
    """``--family A B`` and ``--family A,B`` alike."""
    if not values:
        return None
    return [v for value in values for v in value.split(",") if v]


# the columns every aenbench leaderboard has (a CSV without them is another tool's)
NEEDED_COLUMNS = ["source", "track", "dataset", "family", "params"]
REBUILD = "rebuild it with `snakemake results/leaderboard.csv --forcerun leaderboard --cores all`"


def read_leaderboard(path: str | Path) -> pd.DataFrame:
    """The leaderboard CSV at ``path``, refused in one line naming the path and the cause when it is
    missing, a directory, empty, binary, cut short (a partial last line), malformed (a line whose
    field count is not the header's), header-only, another tool's (no key columns) or holds text
    in a metric column."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise CLIError(f"{path} not found; build it with `snakemake results/leaderboard.csv --cores all`")
    if path.is_dir():
        raise CLIError(f"{path}: is a directory, not a leaderboard CSV; give the file, e.g. --file {path / 'leaderboard.csv'}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CLIError(f"{path}: cannot be read ({err.strerror or err})") from err
    if not data.strip():
        raise CLIError(f"{path}: is empty, not a leaderboard CSV; {REBUILD}")
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL byte")
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CLIError(f"{path}: is binary (byte {err.start} is not UTF-8 text), not a leaderboard CSV; {REBUILD}") from err
    if not text.endswith("\n"):
        last = text.count("\n") + 1
        raise CLIError(f"{path}: its last line ({last}) has no line end: the file is cut short (truncated); {REBUILD}")
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        header = next(reader)
        n_rows = 0
        for row in reader:
            n_rows += 1
            if len(row) != len(header):
                raise CLIError(f"{path}: line {reader.line_num} has {len(row)} field(s) where the header has "
                               f"{len(header)}: truncated or malformed; {REBUILD}")
    except csv.Error as err:
        raise CLIError(f"{path}: not a well-formed CSV (line {reader.line_num}: {err}); {REBUILD}") from err
    missing = [c for c in NEEDED_COLUMNS if c not in header]
    if missing:
        shown = ", ".join(header[:6]) + (", ..." if len(header) > 6 else "")
        raise CLIError(f"{path}: not an aenbench leaderboard: no column(s) {', '.join(missing)} (its columns: {shown})")
    if not n_rows:
        raise CLIError(f"{path}: has a header but no rows; {REBUILD}")
    try:
        lb = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, ValueError) as err:
        raise CLIError(f"{path}: not a readable CSV ({str(err).strip().splitlines()[0]}); {REBUILD}") from err
    for column in (c for c in lb.columns if c in R.METRICS and not pd.api.types.is_numeric_dtype(lb[c])):
        numbers = pd.to_numeric(lb[column], errors="coerce")
        bad = lb[column].notna() & numbers.isna()
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise CLIError(f"{path}: the metric column {column} holds text ({lb[column].iloc[i]!r} in data row {i + 1}), "
                           f"where numbers are expected; {REBUILD}")
    return lb


def directions_of(path: Path) -> dict[str, bool | None]:
    """The metric directions from ``metrics.yaml`` next to the leaderboard (the registry's when absent)."""
    from aenbench import leaderboard as L

    try:
        return L.metric_directions(path.parent / "metrics.yaml")
    except Exception as err:  # noqa: BLE001 - any unreadable metrics.yaml is a user-facing refusal
        raise CLIError(f"{path.parent / 'metrics.yaml'}: not a metrics.yaml written by the leaderboard rule "
                       f"({type(err).__name__}); {REBUILD}") from err


def load(path: str | Path) -> tuple[pd.DataFrame, dict[str, bool | None]]:
    lb = read_leaderboard(path)
    return lb, directions_of(Path(path))


def _filter(lb: pd.DataFrame, column: str, values: list[str] | None) -> pd.DataFrame:
    if not values:
        return lb
    if column not in lb.columns:
        raise CLIError(f"the leaderboard has no column {column!r}")
    known = set(lb[column].dropna().astype(str))
    unknown = [v for v in values if v not in known]
    if unknown:
        raise CLIError(f"no rows with {column} = {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return lb[lb[column].astype(str).isin(values)]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _render(df: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    cells = df.map(_fmt)
    if fmt == "markdown":
        from aenbench.tables import markdown_table

        return markdown_table(list(df.columns), cells.values.tolist())
    return cells.to_string(index=False)


def cmd_leaderboard(args: argparse.Namespace) -> str:
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit {args.limit}: give a positive number of rows")
    if args.columns is not None and not _split(args.columns):
        raise CLIError(f"--columns {' '.join(args.columns)!r} names no column; give column names, e.g. --columns family L0")
    filters = [(column, getattr(args, column)) for column in ("track", "dataset", "family", "source", "kind")]
    for column, values in filters:
        if values is not None and not _split(values):
            raise CLIError(f"--{column} {' '.join(values)!r} names no value")
    lb, directions = load(args.file)
    for column, values in filters:
        lb = _filter(lb, column, _split(values))
    columns = _split(args.columns) or [c for c in DEFAULT_COLUMNS if c in lb.columns]
    added = []
    if args.columns:
        added = [c for c in IDENTITY_COLUMNS
                 if c in lb.columns and c not in columns and lb[c].astype(str).nunique() > 1]
        columns = [*added, *columns]
    if args.all_columns:
        columns = list(lb.columns)
    if args.sort:
        if args.sort not in lb.columns:
            raise CLIError(f"cannot sort by {args.sort!r}: no such column; metrics: {', '.join(directions)}")
        ascending = args.ascending if args.ascending is not None else directions.get(args.sort) is not True
        try:
            lb = lb.sort_values(args.sort, ascending=ascending, kind="stable", na_position="last")
        except TypeError as err:
            raise CLIError(f"cannot sort by {args.sort!r}: its values mix numbers and text") from err
        if args.sort not in columns:
            columns.append(args.sort)
    missing = [c for c in columns if c not in lb.columns]
    if missing:
        raise CLIError(f"no such column(s): {', '.join(missing)}")
    shown = lb[columns].head(args.limit) if args.limit else lb[columns]
    note = f"{len(shown)} of {len(lb)} rows" + (f", sorted by {args.sort}" if args.sort else "")
    arrow = {True: " (↑ better, highest first)", False: " (↓ better, lowest first)"}
    if args.sort and args.ascending is None:
        note += arrow.get(directions.get(args.sort), "")
    if added:
        note += f"; also shown: {', '.join(added)}, which differ between the rows"
    return _render(shown, args.format) + ("" if args.format == "csv" else f"\n\n{note}")


def cmd_compare(args: argparse.Namespace) -> str:
    if not (args.l0_tolerance >= 0 and math.isfinite(args.l0_tolerance)):
        raise CLIError(f"--l0-tolerance {args.l0_tolerance}: give a relative distance ≥ 0, e.g. 0.25")
    lb, directions = load(args.file)
    lb = _filter(lb, "track", _split(args.track))
    tracks = sorted(lb.loc[(lb["family"] == args.name) & (lb["source"] == "ours"), "track"].unique())
    if not tracks:
        known = sorted(lb.loc[lb["source"] == "ours", "family"].dropna().unique())
        raise CLIError(f"no rows of our own for {args.name!r}; families and variants: {', '.join(known)}")
    if len(tracks) == 1:
        return _compare_track(args, lb, directions)
    if args.format == "csv":
        raise CLIError(f"{args.name!r} has rows on several tracks ({', '.join(tracks)}); "
                       "--format csv compares one track: pick it with --track")
    parts = []
    for track in tracks:
        try:
            body = _compare_track(args, lb[lb["track"] == track], directions)
        except CLIError as err:
            body = f"(nothing to compare: {err})"
        head = f"## track {track}" if args.format == "markdown" else f"=== track {track} ==="
        parts.append(f"{head}\n\n{body}")
    return "\n\n".join(parts)


def _compare_track(args: argparse.Namespace, lb: pd.DataFrame, directions: dict[str, bool | None]) -> str:
    """The comparison of ``args.name`` on one track's rows ``lb``."""
    from aenbench.compare import matching as C
    from aenbench.compare import report

    metrics = _split(args.metrics) or [m for m in R.column_list("compare_report") if m in lb.columns]
    unknown = [m for m in metrics if m not in lb.columns]
    if unknown:
        raise CLIError(f"no such metric(s): {', '.join(unknown)}; metrics: {', '.join(directions)}")
    try:
        table = C.matched_l0(lb, args.name, directions, against=_split(args.against), datasets=_split(args.dataset),
                             metrics=metrics, l0_tolerance=args.l0_tolerance)
    except ValueError as err:
        raise CLIError(str(err)) from err
    if table.empty:
        raise CLIError(f"nothing to compare {args.name!r} with on its datasets")
    lines = []
    problems = C.budget_problems(lb[lb["family"].isin([args.name, *table["family"].unique()])
                                    & lb["dataset"].isin(table["dataset"].unique())])
    if problems:
        lines += ["warning: these rows were not trained alike:", *[f"  - {p}" for p in problems], ""]
    if args.format == "csv":
        return table.to_csv(index=False).rstrip("\n")
    if args.format == "markdown":
        lines += [report.summary_markdown(table, metrics, directions), "",
                  report.detail_markdown(table, metrics, directions)]
        return "\n".join(lines).rstrip()
    counts = C.verdict_counts(table, metrics)
    counts["cell"] = [f"{r[C.BETTER]}/{r[C.WORSE]}/{r[C.WITHIN]}/{r[C.NOT_MATCHED]}" for r in counts.to_dict("records")]
    summary = counts.pivot(index="family", columns="metric", values="cell")
    summary = summary.loc[list(dict.fromkeys(counts["family"])), metrics]
    summary.columns = [f"{m}{R.arrow(directions.get(m))}" for m in metrics]
    lines += [report.terminal_table(table, metrics, directions), "",
              f"verdicts of {args.name}, counts better/worse/within seed spread/L0 not matched:",
              summary.to_string(), ""]
    lines += [f"matched L0: the other family's config with the closest seed-mean L0 on the same dataset; "
              f"⚠ = more than {args.l0_tolerance:.0%} away (no verdict). Verdict: outside the family config's "
              "[min, max] over seeds, by the metric's direction."]
    single = int(((table["variant_n_seeds"] <= 1) | (table["family_n_seeds"] <= 1)).sum())
    if single:
        lines += [f"⚠ {single} of {len(table)} matches rest on a single seed on one side: there the spread is one "
                  "value, so any difference reads better or worse. A reading aid, not a significance test; "
                  "train more seeds (train.seeds) or use the spread replicates for a verdict beyond seed noise."]
    return "\n".join(lines)


def _metric_rows(metrics: dict) -> list[dict[str, str]]:
    """One row per metric of a metrics dictionary (metrics.yaml's ``metrics``, or the registry's)."""
    return [{"metric": m, "direction": i["direction"], "group": i["group"], "meaning": i["meaning"]}
            for m, i in metrics.items()]


def cmd_metrics(args: argparse.Namespace) -> str:
    import pandas as pd

    path = Path(args.file).parent / "metrics.yaml"
    if path.is_file():
        import yaml

        try:
            with open(path) as f:
                rows = _metric_rows(yaml.safe_load(f)["metrics"])
        except Exception as err:  # noqa: BLE001 - any unreadable metrics.yaml is a user-facing refusal
            raise CLIError(f"{path}: not a metrics.yaml written by the leaderboard rule ({type(err).__name__}); "
                           f"{REBUILD}") from err
    else:
        rows = _metric_rows(R.metrics_dictionary())
    return _render(pd.DataFrame(rows), args.format)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aenbench",
        description="Filter, sort and compare the rows of results/leaderboard.csv (no DAG rerun).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{leaderboard,compare,metrics}")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--file", default=DEFAULT_FILE, help=f"leaderboard CSV (default {DEFAULT_FILE})")
        sp.add_argument("--format", choices=["text", "csv", "markdown"], default="text", help="output format")

    lb = sub.add_parser("leaderboard", help="filter and sort the leaderboard",
                        description="Print leaderboard rows. Filters take one or more values (A B or A,B).")
    common(lb)
    lb.add_argument("--track", nargs="+", help="synthetic, synthsae or llm")
    lb.add_argument("--dataset", nargs="+", help="e.g. rho0.5")
    lb.add_argument("--family", nargs="+", help="family or variant names, e.g. AEN TopK")
    lb.add_argument("--source", nargs="+", help="ours or paper")
    lb.add_argument("--kind", nargs="+", help="family or variant")
    lb.add_argument("--sort", metavar="METRIC", help="sort by this column; best first by its direction")
    order = lb.add_mutually_exclusive_group()
    order.add_argument("--ascending", dest="ascending", action="store_true", default=None, help="lowest first")
    order.add_argument("--descending", dest="ascending", action="store_false", help="highest first")
    lb.add_argument("--columns", nargs="+", help="columns to show (default: keys and main metrics)")
    lb.add_argument("--all-columns", action="store_true", help="show every column")
    lb.add_argument("--limit", type=int, help="show at most this many rows")
    lb.set_defaults(func=cmd_leaderboard)

    cp = sub.add_parser("compare", help="matched-L0 comparison of a family or variant with the others",
                        description="For every config of NAME, the closest-L0 config of each other family on the "
                                    "same dataset, with deltas and a verdict per metric (better / worse / within "
                                    "the family config's seed spread). Our own rows only.")
    common(cp)
    cp.add_argument("name", help="a family or variant of the leaderboard, e.g. AEN or L1-resample")
    cp.add_argument("--track", nargs="+", help="synthetic, synthsae or llm (default: every track NAME has rows "
                                               "on, one comparison per track)")
    cp.add_argument("--against", nargs="+", help="families to compare with (default: every other family of the track)")
    cp.add_argument("--dataset", nargs="+", help="datasets to compare on (default: all of NAME's)")
    cp.add_argument("--metrics", nargs="+", help=f"metrics (default: {' '.join(R.column_list('compare_report'))})")
    cp.add_argument("--l0-tolerance", type=float, default=R.L0_TOLERANCE,
                    help=f"relative L0 distance beyond which a match gets no verdict (default {R.L0_TOLERANCE})")
    cp.set_defaults(func=cmd_compare)

    mp = sub.add_parser("metrics", help="every metric with its meaning and direction (↑/↓)")
    common(mp)
    mp.set_defaults(func=cmd_metrics)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        out = args.func(args)
    except CLIError as err:
        print(f"aenbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    try:
        print(out)
    except BrokenPipeError:  # e.g. `aenbench leaderboard | head`
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
