"""HTML renderings of the table CSVs for ``snakemake --report`` (workflow/rules/report.smk).

The report shows an ``.html`` output inline and offers any other file (a CSV) only as a
download, so every table the report holds is attached as the HTML page :func:`table_html`
makes of its CSV (the CSV stays a plain output of its rule):

* each header carries its metric's direction from :mod:`aenbench.metric_registry` (`` ↑``
  higher is better, `` ↓`` lower is better, nothing without a preferred direction) and, as a
  tooltip, the column's meaning; :func:`metric_of` finds the metric behind a derived column
  (``EV_min``, ``dead_pct_family``, ``MCC_delta``, ``variant_L0``, ...);
* a column with ``<column>_min`` and ``<column>_max`` beside it shows "mean [min, max]" cells
  (:func:`aenbench.tables.mean_range`, the markdown tables' cells; the mean alone where
  min = max) in place of the three;
* numbers get 3 significant digits (whole numbers in full), booleans yes / no, NaN an empty
  cell; columns empty in every row are left out (the caption names them).

``DataFrame.to_html`` writes the table. Pure pandas: nothing here imports torch.

A markdown report (``results/compare/<variant>.md``) is shown the same way, as the page
:func:`markdown_html` renders of it (markdown-it-py, its tables as HTML tables, its images
inlined so the report's iframe shows them).
"""

from __future__ import annotations

import html
import math
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aenbench.io import write_text
from aenbench.metric_registry import METRICS, arrow, describe
from aenbench.tables import mean_range

#: Suffixes and prefixes that derive a column from a metric (seed spread, ours / paper, the
#: comparison's variant / family / delta, the closest-to-k pick), longest suffix first.
DERIVED_SUFFIXES = ("_family_min", "_family_max", "_selected", "_variant", "_family", "_delta", "_paper", "_ours",
                    "_mean", "_min", "_max")
DERIVED_PREFIXES = ("variant_", "family_", "target_")
#: The number format of every non-whole number (and of the "mean [min, max]" cells).
FMT = ".3g"
#: Where a value's mean is when ``<base>_min`` / ``<base>_max`` hold its spread.
MEAN_COLUMNS = ("{}", "{}_mean", "{}_ours")

CSS = """
body { margin: 0.6em; font: 13px/1.35 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; }
table.aenbench { border-collapse: collapse; }
table.aenbench caption { caption-side: top; text-align: left; padding: 0 0 0.6em; color: #444; }
table.aenbench caption .title { font-weight: 600; font-size: 15px; color: #000; }
table.aenbench th, table.aenbench td { border: 1px solid #d0d7de; padding: 3px 7px; white-space: nowrap; }
table.aenbench thead th { position: sticky; top: 0; background: #eef1f4; text-align: center; }
table.aenbench tbody tr:nth-child(even) { background: #f8f9fa; }
table.aenbench tbody tr:hover { background: #fff8c5; }
table.aenbench th span[title] { cursor: help; }
"""


def metric_of(column: str) -> str | None:
    """The :data:`~aenbench.metric_registry.METRICS` entry a column reports: the column itself,
    or its name less one of :data:`DERIVED_PREFIXES` and / or one of :data:`DERIVED_SUFFIXES`
    (``dead_pct_family_min`` → ``dead_pct``); None for any other column."""
    if column in METRICS:
        return column
    for prefix in ("", *DERIVED_PREFIXES):
        if not column.startswith(prefix):
            continue
        stem = column[len(prefix):]
        if prefix and stem in METRICS:
            return stem
        for suffix in DERIVED_SUFFIXES:
            if stem.endswith(suffix) and stem[: -len(suffix)] in METRICS:
                return stem[: -len(suffix)]
    return None


def header(column: str) -> str:
    """``column`` with its metric's arrow (`` ↑`` / `` ↓``; none without a direction)."""
    metric = metric_of(column)
    return column + (arrow(METRICS[metric].higher_is_better) if metric else "")


def format_cell(value: Any) -> str:
    """A cell's text: yes / no, whole numbers in full, other numbers to 3 significant digits
    (``.3g``, as the markdown tables), "" for NaN / None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:{FMT}}"
    return str(value)


def range_cell(mean: float, lo: float, hi: float) -> str:
    """"mean [min, max]" (:func:`aenbench.tables.mean_range`); the mean alone where min and max
    read the same (``16 [16, 16]`` is ``16``), "" for a NaN mean."""
    return mean_range(mean, lo, hi, fmt=FMT, spread=not pd.isna(lo) and f"{lo:{FMT}}" != f"{hi:{FMT}}")


def spread_columns(columns: list[str]) -> dict[str, tuple[str, str]]:
    """``mean column → (min column, max column)`` for every ``<base>_min`` / ``<base>_max`` pair
    with a mean column (:data:`MEAN_COLUMNS`: ``<base>``, ``<base>_mean``, ``<base>_ours``)."""
    present = set(columns)
    out = {}
    for column in columns:
        base = column.removesuffix("_min")
        if base == column or f"{base}_max" not in present:
            continue
        mean = next((m.format(base) for m in MEAN_COLUMNS if m.format(base) in present), None)
        if mean is not None:
            out[mean] = (column, f"{base}_max")
    return out


def display_frame(rows: pd.DataFrame, spread: bool = True, drop_empty: bool = True) -> tuple[pd.DataFrame, dict]:
    """``rows`` as the strings the page shows (:func:`format_cell`; with ``spread``, "mean [min, max]"
    cells for the numeric :func:`spread_columns`) and what was done: ``{"spread": mean columns
    merged, "empty": columns left out, "numeric": columns shown right-aligned}``."""
    numeric = {c for c in rows.columns
               if pd.api.types.is_numeric_dtype(rows[c]) and not pd.api.types.is_bool_dtype(rows[c])}
    pairs = {m: mm for m, mm in spread_columns(list(rows.columns)).items() if {m, *mm} <= numeric} if spread else {}
    merged_away = {c for mm in pairs.values() for c in mm}
    out = {}
    for column in rows.columns:
        if column in merged_away:
            continue
        if column in pairs:
            lo, hi = pairs[column]
            out[column] = [range_cell(m, a, b) for m, a, b in zip(rows[column], rows[lo], rows[hi])]
        else:
            out[column] = [format_cell(v) for v in rows[column]]
    shown = pd.DataFrame(out, index=rows.index, columns=list(out))
    empty = [c for c in shown.columns if drop_empty and len(shown) and (shown[c] == "").all()]
    shown = shown.drop(columns=empty)
    return shown, {"spread": [m for m in pairs if m in shown.columns], "empty": empty,
                   "numeric": [c for c in shown.columns if c in numeric]}


def _header_html(column: str) -> str:
    metric = metric_of(column)
    meaning = describe(column) or (describe(metric) if metric else None)
    label = html.escape(header(column))
    return f'<span title="{html.escape(meaning)}">{label}</span>' if meaning else label


def table_html(rows: pd.DataFrame, title: str, *, source: str | None = None, spread: bool = True,
               drop_empty: bool = True, note: str | None = None) -> str:
    """A standalone HTML page with ``rows`` as one table: a caption (``title``, the row count,
    ``source``, the arrow legend, what was merged or left out), direction arrows in the header,
    formatted cells (:func:`display_frame`)."""
    shown, done = display_frame(rows, spread=spread, drop_empty=drop_empty)
    lines = [f"{len(shown)} row{'' if len(shown) == 1 else 's'}" + (f" from {source}" if source else "") + "."]
    if any(header(c) != c for c in shown.columns):
        lines.append("↑ higher is better, ↓ lower is better, no arrow: no preferred direction "
                     "(aenbench.metric_registry); a header's tooltip gives its meaning.")
    if done["spread"]:
        lines.append("Cells with a range: mean [min, max] (the mean alone where min = max).")
    if done["empty"]:
        lines.append("Empty in every row, left out: " + ", ".join(done["empty"]) + ".")
    if note:
        lines.append(note)
    caption = "<br>".join([f'<span class="title">{html.escape(title)}</span>', *map(html.escape, lines)])

    cells = shown.apply(lambda col: col.map(html.escape))  # escaped here, so to_html may keep the header's tooltip
    cells.columns = [_header_html(c) for c in shown.columns]
    table = cells.to_html(index=False, escape=False, border=0, justify="center", classes="aenbench")
    table = table.replace("<thead>", f"<caption>{caption}</caption>\n  <thead>", 1)
    right = [f"table.aenbench td:nth-child({j + 1})" for j, c in enumerate(shown.columns) if c in done["numeric"]]
    css = CSS + (", ".join(right) + " { text-align: right; font-variant-numeric: tabular-nums; }\n" if right else "")
    return (f'<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{css}</style>\n</head>\n<body>\n{table}\n</body>\n</html>\n")


def write_table_html(csv: str | Path, out: str | Path, title: str, columns: list[str] | None = None,
                     **kwargs: Any) -> pd.DataFrame:
    """:func:`table_html` of the CSV ``csv`` (its file name as the source) written to ``out``;
    with ``columns``, only those of them the CSV has, in that order, and the caption says how many
    others the CSV holds. Returns the rows read."""
    rows = pd.read_csv(csv)
    shown = rows
    if columns:
        keep = [c for c in dict.fromkeys(columns) if c in rows.columns]
        shown = rows[keep]
        rest = rows.shape[1] - len(keep)
        if rest:
            note = (f"{len(keep)} of its {rows.shape[1]} columns shown; the other {rest} "
                    f"(hyperparameters, diagnostics, provenance) are in {Path(csv).name}.")
            kwargs["note"] = " ".join(filter(None, [kwargs.get("note"), note]))
    write_text(out, table_html(shown, title, source=Path(csv).name, **kwargs))
    return rows


def markdown_html(text: str, title: str, base_dir: str | Path = ".") -> str:
    """A standalone HTML page of the markdown ``text`` (CommonMark with tables, markdown-it-py),
    styled like :func:`table_html`; every local image it links (relative to ``base_dir``) is
    inlined as a ``data:`` URI. An image that cannot be read is refused, naming its path."""
    import base64
    import mimetypes

    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type != "image":
                continue
            src = str(child.attrGet("src") or "")
            if not src or src.startswith(("data:", "http:", "https:")):
                continue
            path = Path(base_dir) / src
            try:
                data = path.read_bytes()
            except OSError as e:
                raise FileNotFoundError(f"{title}: the image {src!r} it shows cannot be read at {path}: {e}") from e
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            child.attrSet("src", f"data:{mime};base64,{base64.b64encode(data).decode()}")
            child.attrSet("style", "max-width: 100%")
    body = md.renderer.render(tokens, md.options, {}).replace("<table>", '<table class="aenbench">')
    return (f'<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")
