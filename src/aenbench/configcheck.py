"""Config validation with errors a researcher can act on.

Every schema violation is reported at once, each as ``<field path>: <bad value> — <what is
allowed>``, before any compute is spent. Imports nothing heavy (the Snakefile loads this module
while planning the DAG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml


def load_schema(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def _field(path: Any) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    v = error.validator
    value = error.validator_value
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = _field(error.absolute_path)
        hint = f"allowed keys: {', '.join(allowed)}" if allowed else "no other keys are allowed here"
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))} — {hint}"
    field = _field(error.absolute_path)
    bad = repr(error.instance)
    allowed = {
        "type": f"must be of type {value}",
        "minimum": f"must be ≥ {value}",
        "maximum": f"must be ≤ {value}",
        "exclusiveMinimum": f"must be > {value}",
        "exclusiveMaximum": f"must be < {value}",
        "enum": f"must be one of {value}",
        "required": f"missing required key(s); required: {value}",
        "minItems": f"needs at least {value} item(s)",
        "maxItems": f"needs at most {value} item(s)",
        "uniqueItems": "items must be unique",
        "pattern": f"must match {value}",
        "minProperties": f"needs at least {value} entr(y/ies)",
    }.get(v, error.message)
    if v == "required":
        return f"{field}: {error.message}"
    return f"{field} = {bad}: {allowed}"


def schema_errors(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """All violations of ``schema`` in ``config``, as readable one-liners."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for err in errors:
        # for a oneOf/anyOf/$ref the most specific sub-error is the useful one
        best = jsonschema.exceptions.best_match([err]) if err.context else err
        out.append(_describe(best))
    return out
