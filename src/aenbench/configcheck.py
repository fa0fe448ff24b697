"""Config validation with errors a researcher can act on.

Every schema violation is reported at once, each as ``<field path>: <bad value> — <what is
allowed>``, before any compute is spent. Imports nothing heavy (the Snakefile loads this module
while planning the DAG).
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

#: the checkout (src/aenbench/configcheck.py → ../..): where a variant's relative plugin path is
#: looked up when it is not found from the working directory (as compare_common.smk does)
CHECKOUT = Path(__file__).resolve().parents[2]
ARCH_FIELDS_FILE = Path(__file__).resolve().with_name("arch_fields.py")
INT64_MAX = 2**63 - 1


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
        "uniqueItems": "items must be unique" + _repeat_hint(error.instance),
        "pattern": f"must match {value}",
        "minProperties": f"needs at least {value} entr(y/ies)",
    }.get(v, error.message)
    if v == "required":
        return f"{field}: {error.message}"
    return f"{field} = {bad}: {allowed}"


def _repeat_hint(instance: Any) -> str:
    """`` (0.1 is listed twice: remove the repeat)`` for a list with a repeated value."""
    if not isinstance(instance, list):
        return ""
    seen: list[Any] = []
    for v in instance:
        if any(v == w and isinstance(v, bool) == isinstance(w, bool) for w in seen):
            return f" ({v!r} is listed more than once: remove the repeat)"
        seen.append(v)
    return ""


def schema_errors(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """All violations of ``schema`` in ``config``, as readable one-liners; then what JSON schema
    lets through: NaN and ±inf anywhere (they pass minimum / maximum) and integral floats such
    as 8.0 where the schema says ``type: integer`` (JSON schema counts 8.0 as an integer)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for err in errors:
        # for a oneOf/anyOf/$ref the most specific sub-error is the useful one
        best = jsonschema.exceptions.best_match([err]) if err.context else err
        out.append(_describe(best))
    reported = {_key(m) for m in out}
    out += [m for m in nonfinite_errors(config) + integer_errors(config, schema) if _key(m) not in reported]
    return out


def _walk(node: Any, path: tuple = ()) -> Any:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, i))


def nonfinite_errors(config: Any) -> list[str]:
    """Every NaN / inf in the config (YAML ``.nan``, ``.inf``), wherever it is."""
    return [f"{_field(path)} = {v!r}: must be a finite number (YAML .nan / .inf are not allowed; write a finite value)"
            for path, v in _walk(config) if isinstance(v, float) and not math.isfinite(v)]


def _resolve(schema: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def integer_errors(config: Any, schema: dict[str, Any]) -> list[str]:
    """Floats with no fractional part (8.0) at the schema's ``type: integer`` fields (JSON schema
    accepts them; ``range(8.0)``, ``torch.zeros(8.0)`` do not)."""
    out: list[str] = []

    def visit(node: Any, sub: Any, path: tuple) -> None:
        sub = _resolve(schema, sub)
        if not isinstance(sub, dict):
            return
        types = sub.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        if ("integer" in types and "number" not in types and isinstance(node, float)
                and math.isfinite(node) and node.is_integer()):
            out.append(f"{_field(path)} = {node!r}: must be an integer, not a float — write {int(node)}")
        if isinstance(node, dict):
            props = sub.get("properties", {})
            extra = sub.get("additionalProperties")
            for k, v in node.items():
                if k in props:
                    visit(v, props[k], (*path, k))
                elif isinstance(extra, dict):
                    visit(v, extra, (*path, k))
        elif isinstance(node, list) and isinstance(sub.get("items"), dict):
            for i, v in enumerate(node):
                visit(v, sub["items"], (*path, i))

    visit(config, schema, ())
    return out


# --- the generated table of architectures' config fields (src/aenbench/arch_fields.py, written by
# scripts/gen_arch_fields.py), read as literals: nothing is imported at DAG start.

def load_tables(path: str | Path = ARCH_FIELDS_FILE) -> dict[str, Any]:
    """The upper-case literal assignments of arch_fields.py (ARCH_FIELDS, CONFIG_CLASSES, MODELS,
    SYNTHSAE_SPEC, SET_BY_AENBENCH), parsed with ``ast`` instead of imported."""
    tree = ast.parse(Path(path).read_text())
    return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}


def annotation_kind(text: str) -> dict[str, Any]:
    """A dataclass field's annotation (``int``, ``float | None``, ``Literal['a', 'b']``,
    ``<class 'int'>``, ``typing.Literal[...]``) as the kind of value a config may give it:
    ``{"type": int|float|bool|str|list|any}`` or ``{"enum": [...]}``, with ``"null": True`` when
    None is allowed."""
    s = text.strip()
    m = re.fullmatch(r"<class '([\w.]+)'>", s)
    if m:
        s = m.group(1)
    s = s.replace("typing.", "").replace("typing_extensions.", "").replace("builtins.", "")
    try:
        node = ast.parse(s, mode="eval").body
    except SyntaxError:
        return {"type": "any"}
    parts = _union_parts(node)
    null = any(isinstance(p, ast.Constant) and p.value is None or isinstance(p, ast.Name) and p.id == "None"
               for p in parts)
    rest = [p for p in parts if not (isinstance(p, ast.Constant) and p.value is None
                                     or isinstance(p, ast.Name) and p.id == "None")]
    kind = _single_kind(rest[0]) if len(rest) == 1 else {"type": "any"}
    if null:
        kind["null"] = True
    return kind


def _union_parts(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_parts(node.left) + _union_parts(node.right)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "Optional":
            return [node.slice, ast.Constant(None)]
        if node.value.id == "Union":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            return [p for e in elts for p in _union_parts(e)]
    return [node]


def _single_kind(node: ast.expr) -> dict[str, Any]:
    if isinstance(node, ast.Name) and node.id in ("int", "float", "bool", "str"):
        return {"type": node.id}
    if isinstance(node, ast.Name) and node.id in ("list", "tuple", "List", "Tuple", "Sequence"):
        return {"type": "list"}
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            try:
                return {"enum": [ast.literal_eval(e) for e in elts]}
            except ValueError:
                return {"type": "any"}
        if node.value.id in ("list", "tuple", "List", "Tuple", "Sequence"):
            return {"type": "list"}
    return {"type": "any"}


def value_fits(kind: dict[str, Any], v: Any) -> bool:
    if v is None:
        return bool(kind.get("null")) or kind.get("type") == "any"
    if "enum" in kind:
        return any(v == e and type(v) is type(e) for e in kind["enum"])
    t = kind.get("type", "any")
    if t == "int":
        return _integer(v)
    if t == "float":
        return _number(v) and math.isfinite(v)
    if t == "bool":
        return isinstance(v, bool)
    if t == "str":
        return isinstance(v, str)
    if t == "list":
        return isinstance(v, list)
    return True


def describe_kind(kind: dict[str, Any]) -> str:
    if "enum" in kind:
        text = f"one of {kind['enum']}"
    else:
        text = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                "list": "a list", "any": "any value"}[kind.get("type", "any")]
    return text + (" or null" if kind.get("null") else "")


def _value_hint(kind: dict[str, Any], v: Any) -> str:
    if kind.get("type") == "int" and isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return f" — write {int(v)}"
    if kind.get("type") in ("int", "float") and isinstance(v, str):
        try:
            number = float(v)
        except ValueError:
            return ""
        if kind["type"] == "float" or number.is_integer():
            written = repr(number) if kind["type"] == "float" else str(int(number))
            return f" — YAML read {v!r} as a string (a YAML 1.1 float needs a dot: 1.0e-3); write {written}"
    if isinstance(v, bool) and kind.get("type") in ("int", "float"):
        return " — write a number, not true/false"
    return ""


def _suggest(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


# --- SAE plugins (a variant's `plugin:` file): the architectures it registers and the fields of
# their training configs, read with `ast` (the file is not imported at DAG start)

class PluginFacts:
    """What ``ast`` can tell of a plugin file: ``registrations`` maps each architecture it registers
    with ``register_sae_training_class`` to its config's fields (None: a base class not found in
    the file or in the table), ``complete`` is False when some registration's name could not be
    read (a computed string)."""

    def __init__(self, registrations: dict[str, dict[str, Any] | None], complete: bool):
        self.registrations, self.complete = registrations, complete


def plugin_facts(source: str, classes: dict[str, dict[str, Any]]) -> PluginFacts:
    tree = ast.parse(source)
    consts = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
              and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
              for t in node.targets if isinstance(t, ast.Name)}
    defs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}

    def name_of(node: ast.expr) -> str | None:
        return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None

    def fields_of(name: str | None, depth: int = 0) -> dict[str, Any] | None:
        if name is None or depth > 20:
            return None
        if name in defs:
            merged: dict[str, Any] = {}
            for base in reversed(defs[name].bases):  # dataclass fields: bases in reverse MRO, then its own
                found = fields_of(name_of(base), depth + 1)
                if found is None:
                    return None
                merged.update(found)
            for stmt in defs[name].body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    text = ast.unparse(stmt.annotation)
                    if "ClassVar" not in text and stmt.target.id not in ("d_in", "d_sae", "device", "metadata"):
                        merged[stmt.target.id] = annotation_kind(text)
            return merged
        return dict(classes[name]) if name in classes else None

    registrations: dict[str, dict[str, Any] | None] = {}
    complete = True
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and name_of(node.func) == "register_sae_training_class":
            if len(node.args) < 3:
                complete = False
                continue
            arch = node.args[0]
            name = (arch.value if isinstance(arch, ast.Constant) and isinstance(arch.value, str)
                    else consts.get(arch.id) if isinstance(arch, ast.Name) else None)
            if name is None:
                complete = False
                continue
            registrations[name] = fields_of(name_of(node.args[2]))
    return PluginFacts(registrations, complete)


def resolve_plugin_path(plugin: str, basedir: str | Path = CHECKOUT) -> Path:
    """As compare_common.smk's variant_plugin: from the working directory when it exists there,
    else relative to the checkout."""
    path = Path(plugin)
    return path if path.is_absolute() or path.exists() else Path(basedir) / path


# --- hyperparameter names and kinds against each architecture's config fields

def _plugin_archs(cfg: dict[str, Any], tables: dict[str, Any], basedir: str | Path,
                  problems: list[str], notes: list[str]) -> dict[str, dict[str, Any] | None]:
    """architecture -> fields (None: not readable) of every variant's plugin; plugin problems
    (missing file, not Python, architecture it does not register) go to ``problems``."""
    known = tables["ARCH_FIELDS"]
    out: dict[str, dict[str, Any] | None] = {}
    for name, variant in (cfg.get("variants") or {}).items():
        arch, plugin = variant.get("architecture"), variant.get("plugin")
        if not plugin or not isinstance(arch, str):
            continue
        path = resolve_plugin_path(plugin, basedir)
        if not path.is_file():
            problems.append(f"variants.{name}.plugin = {plugin!r}: no such file (looked in the working directory "
                            f"and in {basedir}) — give the path of the Python file that registers {arch!r}")
            out[arch] = None  # reported: not also an unknown architecture
            continue
        try:
            facts = plugin_facts(path.read_text(), tables["CONFIG_CLASSES"])
        except (SyntaxError, UnicodeDecodeError, ValueError) as err:
            line = getattr(err, "lineno", None)
            problems.append(f"variants.{name}.plugin = {plugin!r}: not a Python file that parses"
                            f"{f' (line {line})' if line else ''}: {getattr(err, 'msg', err)} — fix the file")
            out[arch] = None
            continue
        if arch in facts.registrations:
            out[arch] = facts.registrations[arch]
            if facts.registrations[arch] is None:
                notes.append(f"variants.{name}: the config fields of {arch!r} could not be read from {plugin} (its "
                             "config's base class is not a sae-lens training config): its hyperparameter names "
                             "are checked only when its training job builds the SAE")
        elif facts.complete and facts.registrations:
            problems.append(f"variants.{name}.architecture = {arch!r}: {plugin} registers only "
                            f"{', '.join(map(repr, sorted(facts.registrations)))} — set architecture to one of them")
            out[arch] = None
        else:
            out[arch] = None
            notes.append(f"variants.{name}: could not tell from {plugin} with ast which architectures it registers: "
                         f"{arch!r} and its hyperparameter names are checked only when its training job starts")
    return out


def name_problems(cfg: dict[str, Any], tables: dict[str, Any], basedir: str | Path = CHECKOUT,
                  notes: list[str] | None = None) -> list[str]:
    """Architecture names, hyperparameter names and the kinds of their values (families.*.fixed /
    grid, arch_defaults, synthsae.arch_defaults, llm.families, llm.arch_defaults, ablations.*.fixed
    / arms, variants.*), against the generated table of each architecture's config fields; names
    set both in a family's fixed and in its grid; synthsae.spec keys and values."""
    notes = notes if notes is not None else []
    problems: list[str] = []
    known: dict[str, Any] = tables["ARCH_FIELDS"]
    plugins = _plugin_archs(cfg, tables, basedir, problems, notes)
    registered = ", ".join(sorted(known))

    def fields(arch: str) -> dict[str, Any] | None:
        return known[arch]["fields"] if arch in known else plugins.get(arch)

    def check_arch(where: str, arch: Any, allow_plugin: bool) -> bool:
        if not isinstance(arch, str):
            return False  # the schema reports it
        if arch in known or (allow_plugin and arch in plugins):
            return True
        problems.append(f"{where}.architecture = {arch!r}: not a registered SAE architecture — "
                        f"{_suggest(arch, list(known))}registered: {registered} (a new architecture goes under "
                        "variants: with a plugin: file)")
        return False

    def check_values(where: str, arch: str, values: dict[str, Any], grid: bool = False) -> None:
        allowed = fields(arch)
        if allowed is None or not isinstance(values, dict):
            return
        cls = known[arch]["config_class"] if arch in known else f"{arch} (plugin)"
        for name, value in values.items():
            if name not in allowed:
                if name in tables["SET_BY_AENBENCH"]:
                    fix = "aenbench sets it from the track (n / m, llm.width, device) — remove it"
                else:
                    fix = f"{_suggest(name, list(allowed))}fields of {cls}: {', '.join(sorted(allowed))}"
                problems.append(f"{where}.{name}: {name!r} is not a hyperparameter of architecture {arch!r} — {fix}")
                continue
            for i, v in (enumerate(value) if grid and isinstance(value, list) else [(None, value)]):
                if not value_fits(allowed[name], v):
                    problems.append(f"{where}.{name}{'' if i is None else f'[{i}]'} = {v!r}: must be "
                                    f"{describe_kind(allowed[name])} (field {name} of architecture {arch!r})"
                                    f"{_value_hint(allowed[name], v)}")

    def check_family(where: str, fam: dict[str, Any], allow_plugin: bool) -> None:
        if not isinstance(fam, dict) or not check_arch(where, fam.get("architecture"), allow_plugin):
            return
        arch = fam["architecture"]
        check_values(f"{where}.fixed", arch, fam.get("fixed") or {})
        check_values(f"{where}.grid", arch, fam.get("grid") or {}, grid=True)
        both = sorted(set(fam.get("fixed") or {}) & set(fam.get("grid") or {}))
        for name in both:
            problems.append(f"{where}: {name!r} is set in both fixed and grid (the grid value silently wins) — "
                            "keep it in one of them")
        problems.extend(half_fraction_problems(where, fam))

    def check_defaults(where: str, defaults: Any, allow_plugin: bool) -> None:
        for arch, values in (defaults or {}).items():
            if arch in known or (allow_plugin and arch in plugins):
                check_values(f"{where}.{arch}", arch, values or {})
            else:
                problems.append(f"{where}.{arch}: not a registered SAE architecture, so these defaults would never be "
                                f"used — {_suggest(arch, list(known))}registered: {registered}")

    check_defaults("arch_defaults", cfg.get("arch_defaults"), True)
    families = cfg.get("families") or {}
    for name, fam in families.items():
        check_family(f"families.{name}", fam, False)
    for name, variant in (cfg.get("variants") or {}).items():
        check_family(f"variants.{name}", variant, bool(variant.get("plugin")))
    for name, abl in (cfg.get("ablations") or {}).items():
        base = families.get(abl.get("base")) if isinstance(abl, dict) else None
        arch = base.get("architecture") if isinstance(base, dict) else None
        if isinstance(arch, str) and arch in known:
            check_values(f"ablations.{name}.fixed", arch, abl.get("fixed") or {})
            for arm, overrides in (abl.get("arms") or {}).items():
                check_values(f"ablations.{name}.arms.{arm}", arch, overrides or {})
    ss = cfg.get("synthsae")
    if isinstance(ss, dict):
        check_defaults("synthsae.arch_defaults", ss.get("arch_defaults"), False)
        spec_defaults = tables["SYNTHSAE_SPEC"]
        for key, v in (ss.get("spec") or {}).items():
            if key not in spec_defaults:
                problems.append(f"synthsae.spec.{key}: unknown spec key — {_suggest(key, list(spec_defaults))}"
                                f"keys: {', '.join(sorted(spec_defaults))}")
                continue
            default = spec_defaults[key]
            kind = ({"type": "any"} if default is None else {"type": "bool"} if isinstance(default, bool)
                    else {"type": "int"} if isinstance(default, int) else {"type": "float"} if isinstance(default, float)
                    else {"type": "any"})
            if not value_fits(kind, v):
                problems.append(f"synthsae.spec.{key} = {v!r}: must be {describe_kind(kind)} (default "
                                f"{default!r}){_value_hint(kind, v)}")
            elif key == "seed" and not 0 <= v <= INT64_MAX:
                problems.append(f"synthsae.spec.seed = {v!r}: must be within 0 … {INT64_MAX} (int64)")
    llm = cfg.get("llm")
    if isinstance(llm, dict):
        check_defaults("llm.arch_defaults", llm.get("arch_defaults"), False)
        for name, fam in (llm.get("families") or {}).items():
            check_family(f"llm.families.{name}", fam, False)
    return problems


def layer_problems(cfg: dict[str, Any], tables: dict[str, Any]) -> list[str]:
    """llm.hook past the last layer of the registered model."""
    llm = cfg.get("llm")
    if not isinstance(llm, dict):
        return []
    model, hook = llm.get("model"), llm.get("hook")
    spec = tables["MODELS"].get(model)
    m = re.fullmatch(r"blocks\.([0-9]+)\.(.+)", hook) if isinstance(hook, str) else None
    if spec is None or m is None:
        return []
    layer, n = int(m.group(1)), spec["n_layers"]
    if layer >= n:
        return [f"llm.hook = {hook!r}: {model} has {n} layers (blocks.0 … blocks.{n - 1}) — pick a layer ≤ {n - 1}, "
                f"e.g. blocks.{n // 2}.{m.group(2)}"]
    return []


def storage_problems(cfg: dict[str, Any]) -> list[str]:
    """A streamed train split has no stored activations to take the statistics from."""
    h = (cfg.get("llm") or {}).get("harvest") or {}
    if h.get("train_storage") == "stream" and h.get("stats_split") == "train":
        return ["llm.harvest.stats_split = 'train': with train_storage: stream the train activations are never stored, "
                "so the mean for mean-ablation and the norm statistics come from the eval split — set it to 'eval' "
                "or leave it out"]
    return []


# --- the grid-size guard

#: above this many SAEs a config is refused unless it sets ``allow_large_grid: true`` (the
#: shipped configs train at most 1,003: configs/paper_grid.yaml 1,003, default 345, smoke 46, the paper configs 16–660)
GRID_SAE_LIMIT = 20_000
FLOP_PER_SAMPLE_DIM = 6  # per SAE, per training sample, per d_in × width: forward and backward of W_enc, W_dec
CPU_FLOPS = 25e9  # effective FLOP/s of one CPU core


def half_fraction_problems(where: str, fam: dict[str, Any]) -> list[str]:
    """A family's ``half_fraction`` (:func:`aenbench.sweeps.grid_combinations`) must list three or
    more distinct grid axes with exactly two values each."""
    half = fam.get("half_fraction")
    if half is None:
        return []
    grid = fam.get("grid") or {}
    out = []
    if not isinstance(half, list) or len(set(map(str, half))) != len(half) or len(half) < 3:
        return [f"{where}.half_fraction = {half!r}: must list three or more distinct grid axes (with two it would "
                "confound their main effects) — e.g. [gamma, beta, p], or remove it for the full product"]
    for axis in half:
        values = grid.get(axis)
        if not isinstance(values, list):
            out.append(f"{where}.half_fraction: {axis!r} is not an axis of {where}.grid (axes: "
                       f"{', '.join(map(str, grid)) or 'none'}) — list only swept axes")
        elif len(values) != 2:
            out.append(f"{where}.half_fraction: {where}.grid.{axis} has {len(values)} values; a two-level fractional "
                       "factorial needs exactly 2 — give it two values or drop it from half_fraction")
    return out


def _n_grid(fam: Any) -> int:
    grid = (fam or {}).get("grid") or {} if isinstance(fam, dict) else {}
    n = math.prod(len(v) if isinstance(v, list) else 1 for v in grid.values())
    return n // 2 if isinstance(fam, dict) and fam.get("half_fraction") else n  # sweeps.grid_combinations


def _llm_saes(llm: dict[str, Any]) -> int:
    """The LLM track's SAEs: its families' grids × its seeds."""
    return sum(_n_grid(f) for f in (llm.get("families") or {}).values()) * len((llm.get("train") or {}).get("seeds") or [0])


def grid_size(cfg: dict[str, Any], tables: dict[str, Any]) -> dict[str, tuple[int, float]]:
    """track -> (SAEs the config trains, estimated CPU seconds), without building any table:
    the count is a product of list lengths. The estimate per SAE is

        steps × batch_size × d_in × width × 6 FLOP / 25 GFLOP/s  (one core)

    with d_in, width = n, m (synthetic), spec hidden_dim, width (synthsae), the model's d_model,
    llm.width (llm). Synthetic counts the families' grids on each ρ (synthetic.pairs respected),
    the spread replicates, the ablations' arms and the variants' grids on their datasets, all
    × synthetic.train.seeds; synthsae and llm their families' grids × their seeds."""
    def cost(train: dict[str, Any], d_in: Any, width: Any) -> float:
        try:
            return float(train["steps"]) * float(train["batch_size"]) * float(d_in) * float(width)                 * FLOP_PER_SAMPLE_DIM / CPU_FLOPS
        except (KeyError, TypeError, ValueError):
            return 0.0

    out: dict[str, tuple[int, float]] = {}
    families = cfg.get("families") or {}
    syn = cfg.get("synthetic")
    if isinstance(syn, dict):
        seeds = len(syn.get("train", {}).get("seeds") or [0])
        datasets = [f"rho{r}" for r in syn.get("rhos") or []]
        pairs = syn.get("pairs") or {}
        trained = [(d, f) for d in datasets for f in pairs.get(d, syn.get("families") or [])]
        count = sum(_n_grid(families.get(f)) for _, f in trained) * seeds
        spread = syn.get("spread") or {}
        replicates = len(spread.get("seeds") or []) + len(spread.get("dictionary_seeds") or [])
        if replicates:
            spread_fams = spread.get("families", syn.get("families") or [])
            count += replicates * sum(1 for _, f in trained if f in spread_fams)
        for abl in (cfg.get("ablations") or {}).values():
            count += len(abl.get("arms") or {}) * len(abl.get("datasets") or datasets) * seeds
        for variant in (cfg.get("variants") or {}).values():
            count += _n_grid(variant) * len((variant.get("compare") or {}).get("datasets") or datasets) * seeds
        out["synthetic"] = (count, count * cost(syn.get("train", {}), syn.get("n"), syn.get("m")))
    ss = cfg.get("synthsae")
    if isinstance(ss, dict):
        train = ss.get("train") or {}
        count = sum(_n_grid(families.get(f)) for f in ss.get("families") or []) * len(train.get("seeds") or [0])
        hidden = (ss.get("spec") or {}).get("hidden_dim", tables["SYNTHSAE_SPEC"]["hidden_dim"])
        out["synthsae"] = (count, count * cost(train, hidden, ss.get("width")))
    llm = cfg.get("llm")
    if isinstance(llm, dict):
        train = llm.get("train") or {}
        count = _llm_saes(llm)
        d_model = (tables["MODELS"].get(llm.get("model")) or {}).get("d_model")
        out["llm"] = (count, count * cost(train, d_model, llm.get("width")))
    return out


def grid_summary(sizes: dict[str, tuple[int, float]]) -> str:
    total = sum(n for n, _ in sizes.values())
    seconds = sum(s for _, s in sizes.values())
    parts = ", ".join(f"{track} {n:,}" for track, (n, _) in sizes.items())
    when = f"{seconds / 3600:,.1f} CPU core-hours" if seconds >= 3600 else f"{seconds / 60:,.1f} CPU core-minutes"
    return (f"this config trains {total:,} SAEs ({parts}), estimated {when} of training "
            f"(steps × batch × d_in × width × {FLOP_PER_SAMPLE_DIM} FLOP at {CPU_FLOPS / 1e9:g} GFLOP/s)")


def grid_size_problems(cfg: dict[str, Any], tables: dict[str, Any],
                       limit: int = GRID_SAE_LIMIT) -> list[str]:
    """The guard: more than ``limit`` SAEs is refused unless the config sets allow_large_grid: true."""
    sizes = grid_size(cfg, tables)
    total = sum(n for n, _ in sizes.values())
    if total > limit and cfg.get("allow_large_grid") is not True:
        return [f"grid size: {grid_summary(sizes)}, above the guard of {limit:,} SAEs — shrink the grids "
                "(families.*.grid, seeds, rhos), or set `allow_large_grid: true` at the top level of the config "
                "to train them anyway"]
    return []


DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
CHUNK_TOKENS = 4096  # aenbench.llm.stream: rows a block is served in


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def llm_disk_estimate(cfg: dict[str, Any], tables: dict[str, Any]) -> str | None:
    """What the LLM track writes, estimated from the config alone (upper bounds: every position but
    the first of a context counted as kept). With ``llm.harvest.train_storage: disk`` the train
    activations, train_contexts × (context_size − 1) × d × dtype bytes; with ``stream`` the train
    contexts' token ids (4 bytes a token) and a checkpoint of one lockstep group: the buffer
    (buffer_tokens + one chunk, float32) and each SAE's weights and Adam moments (3 × (2·d·m + d + m)
    × 4 bytes). Both: the eval activations and the trained SAEs ((2·d·m + d + m) × 4 bytes each)."""
    llm = cfg.get("llm")
    if not isinstance(llm, dict):
        return None
    d = (tables["MODELS"].get(llm.get("model")) or {}).get("d_model")
    h, train, m = llm.get("harvest") or {}, llm.get("train") or {}, llm.get("width")
    try:
        ctx, n_train, n_eval = int(h["context_size"]), int(h["train_contexts"]), int(h["eval_contexts"])
        d, m = int(d), int(m)
    except (KeyError, TypeError, ValueError):
        return None
    per_tok = d * DTYPE_BYTES.get(h.get("dtype", "float16"), 2)
    n_saes = _llm_saes(llm)
    per_sae = (2 * d * m + d + m) * 4
    evals = n_eval * (ctx - 1) * per_tok
    saes = n_saes * per_sae
    storage = h.get("train_storage", "disk")
    if storage == "stream":
        tokens = n_train * ctx * 4
        per_seed = n_saes // max(1, len(train.get("seeds") or [0]))
        ckpt = (int(train.get("buffer_tokens", 65536)) + CHUNK_TOKENS) * d * 4 + 3 * per_sae * per_seed
        total = tokens + ckpt + evals + saes
        batch, stack = int(train.get("batch_size", 4096)), int(train.get("stack_size", 32))
        # device memory of the lockstep job: every SAE of a seed with its Adam moments, the buffer,
        # and the largest stack's step (codes, their gradient and the ReLU mask: ~4 × B × m floats per SAE)
        memory = ckpt + 4 * batch * m * 4 * min(stack, per_seed)
        return (f"LLM track disk estimate (train_storage: stream): {_gb(total)} in all — train token ids "
                f"{_gb(tokens)}, one lockstep checkpoint {_gb(ckpt)} (buffer and {per_seed} SAEs with Adam state), "
                f"eval activations {_gb(evals)}, {n_saes} trained SAEs {_gb(saes)}; no training activation is "
                f"stored (on disk they would take {_gb(n_train * (ctx - 1) * per_tok)}). The lockstep job holds "
                f"the {per_seed} SAEs of a seed at once: ≈ {_gb(memory)} of device memory besides the model "
                f"(lower llm.train.stack_size or split the grid if that does not fit)")
    acts = n_train * (ctx - 1) * per_tok
    total = acts + evals + saes
    return (f"LLM track disk estimate (train_storage: disk): {_gb(total)} in all — train activations {_gb(acts)}, "
            f"eval activations {_gb(evals)}, {n_saes} trained SAEs {_gb(saes)}; "
            f"llm.harvest.train_storage: stream would store none of the train activations")


def _key(problem: str) -> str:
    return problem.split(": ")[0].split(" = ")[0]


def early_problems(cfg: dict[str, Any], tables: dict[str, Any], basedir: str | Path = CHECKOUT,
                   notes: list[str] | None = None, already: list[str] = ()) -> list[str]:
    """For a config that failed the schema: the checks that do not need a schema-valid config
    (names, kinds, architectures, the hook's layer, the grid-size guard), so that one run reports
    them with the schema's errors; a field ``already`` names is not reported twice. Best effort:
    a config too malformed for them gets the schema's errors alone."""
    try:
        found = name_problems(cfg, tables, basedir, notes) + layer_problems(cfg, tables) \
            + grid_size_problems(cfg, tables)
    except (AttributeError, KeyError, TypeError, ValueError):
        return []
    seen = {_key(p) for p in already}
    return [p for p in found if _key(p) not in seen]


# --- YAML mappings with a key given twice (PyYAML keeps the last silently: a family defined
# twice loses its first definition)

def duplicate_key_problems(path: str | Path) -> list[str]:
    try:
        root = yaml.compose(Path(path).read_text(), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return []  # Snakemake reports an unreadable config file itself
    problems: list[str] = []

    def visit(node: Any, where: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else None
                if k is not None and k != "<<":
                    if k in seen:
                        problems.append(f"{_field((*where, k))}: defined twice in {path} (lines {seen[k]} and "
                                        f"{key.start_mark.line + 1}; YAML keeps only the last) — remove or rename one")
                    else:
                        seen[k] = key.start_mark.line + 1
                visit(value, (*where, k))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                visit(item, (*where, i))

    visit(root, ())
    return problems


# --- what the schema cannot express: hyperparameter ranges inside families' fixed / grid values,
# cross-field constraints. Checked at DAG start without importing sae-lens.

def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# name -> (test, what is allowed); per architecture, then for every architecture ("*")
HYPERPARAMETER_RANGES: dict[str, dict[str, tuple[Any, str]]] = {
    "aen": {
        "l1_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0 (λ₁)"),
        "l2_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0 (λ₂)"),
        "beta": (lambda v: _number(v) and 0 < v < 1, "a number with 0 < β < 1 (EMA decay)"),
        "p": (lambda v: _number(v) and 0 < v <= 1, "a number with 0 < p ≤ 1 (target activity)"),
        "gamma": (lambda v: _number(v) and v >= 0, "a number ≥ 0 (γ)"),
        "w_min": (lambda v: _number(v) and v > 0, "a number > 0"),
        "w_max": (lambda v: _number(v) and v > 0, "a number > 0"),
        "warmup_steps": (lambda v: _integer(v) and v >= 0, "an integer ≥ 0"),
        "ramp_steps": (lambda v: _integer(v) and v >= 0, "an integer ≥ 0"),
        "adaptive": (lambda v: isinstance(v, bool), "true or false"),
        "decoder_norm": (lambda v: v in ("project", "weight_penalty"), "one of ['project', 'weight_penalty']"),
        "loss_convention": (lambda v: v in ("authors", "sae_lens"), "one of ['authors', 'sae_lens']"),
    },
    "*": {
        "l1_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0"),
        "aux_loss_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0"),
        "l0_coefficient": (lambda v: _number(v) and v >= 0, "a number ≥ 0"),
        "k": (lambda v: _integer(v) and v >= 1, "an integer ≥ 1"),
    },
}


def _candidates(arch_defaults: dict[str, Any], family: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """hyperparameter -> [(where it is set, value), ...] over arch_defaults, fixed and grid;
    the later source wins, as in ``sweeps.run_hyperparameters``."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for name, value in (arch_defaults.get(family.get("architecture"), {}) or {}).items():
        out[name] = [("arch_defaults", value)]
    for name, value in (family.get("fixed") or {}).items():
        out[name] = [("fixed", value)]
    for name, values in (family.get("grid") or {}).items():
        out[name] = [("grid", v) for v in values]
    return out


def hyperparameter_problems(where: str, family: dict[str, Any], arch_defaults: dict[str, Any],
                            width: int | None = None, width_field: str = "",
                            defaults_field: str = "arch_defaults",
                            fields: dict[str, Any] | None = None) -> list[str]:
    """Range errors of one family's (or variant's) hyperparameters, each naming the field. With
    ``fields`` (the architecture's config fields), names it lacks and values of the wrong kind
    are left to :func:`name_problems`, which reports them."""
    arch = family.get("architecture")
    if not isinstance(arch, str):
        return []
    table = {**HYPERPARAMETER_RANGES["*"], **HYPERPARAMETER_RANGES.get(arch, {})}
    cands = _candidates(arch_defaults, family)
    if fields is not None:
        cands = {name: [(src, v) for src, v in values if value_fits(fields[name], v)]
                 for name, values in cands.items() if name in fields}
    problems = []

    def field(name: str, src: str) -> str:
        return f"{defaults_field}.{arch}.{name}" if src == "arch_defaults" else f"{where}.{src}.{name}"

    for name, values in cands.items():
        if name in table:
            ok, allowed = table[name]
            for src, v in values:
                if not ok(v):
                    problems.append(f"{field(name, src)} = {v!r}: must be {allowed}")
    if arch == "aen" and "w_min" in cands and "w_max" in cands:
        lo = [(s, v) for s, v in cands["w_min"] if _number(v)]
        hi = [(s, v) for s, v in cands["w_max"] if _number(v)]
        if lo and hi and max(v for _, v in lo) > min(v for _, v in hi):
            (s_lo, v_lo), (s_hi, v_hi) = max(lo, key=lambda t: t[1]), min(hi, key=lambda t: t[1])
            problems.append(f"{field('w_min', s_lo)} = {v_lo!r} exceeds {field('w_max', s_hi)} = {v_hi!r}: "
                            "need w_min ≤ w_max")
    if width is not None and "k" in cands:
        for src, v in cands["k"]:
            if _integer(v) and v > width:
                problems.append(f"{field('k', src)} = {v!r}: must be ≤ {width_field} = {width} (k ≤ width)")
    return problems


def spread_problems(syn: dict[str, Any]) -> list[str]:
    """synthetic.spread against the grid it replicates: its seeds must be new seeds, its
    dictionary seeds new teachers, its families families of the track, and the grid one seed
    per configuration (the spread's replicates are named after the grid run's seed)."""
    spread = syn.get("spread") or {}
    problems = []
    grid_seeds = list(syn["train"].get("seeds", [0]))
    if spread.get("seeds") or spread.get("dictionary_seeds"):
        if len(grid_seeds) != 1:
            problems.append(f"synthetic.spread needs one grid seed, but synthetic.train.seeds = {grid_seeds}: "
                            "use one seed there and the others in synthetic.spread.seeds")
        clash = sorted(set(spread.get("seeds", [])) & set(grid_seeds))
        if clash:
            problems.append(f"synthetic.spread.seeds lists {clash}, already grid seeds (synthetic.train.seeds = "
                            f"{grid_seeds}): list other seeds")
        dseed = syn.get("dictionary_seed", 0)
        if dseed in spread.get("dictionary_seeds", []):
            problems.append(f"synthetic.spread.dictionary_seeds lists {dseed}, the grid's own teacher "
                            f"(synthetic.dictionary_seed = {dseed}): list other seeds")
    for name in spread.get("families") or []:
        if name not in syn["families"]:
            problems.append(f"synthetic.spread.families lists {name!r}, which is not in synthetic.families "
                            f"({', '.join(syn['families'])})")
    return problems


def consistency_problems(cfg: dict[str, Any], tables: dict[str, Any] | None = None,
                         basedir: str | Path = CHECKOUT, notes: list[str] | None = None) -> list[str]:
    """Everything the schema cannot express, for a config that passed the schema: architecture
    and hyperparameter names and kinds (:func:`name_problems`, against ``tables``, default the
    generated arch_fields.py), the LLM hook's layer, cross-field constraints, hyperparameter
    ranges, and the grid-size guard. ``notes`` collects what could not be checked here."""
    tables = load_tables() if tables is None else tables
    problems: list[str] = name_problems(cfg, tables, basedir, notes)
    problems += layer_problems(cfg, tables) + storage_problems(cfg)
    arch_fields = tables["ARCH_FIELDS"]

    def fields_of(fam: Any) -> dict[str, Any] | None:
        arch = fam.get("architecture") if isinstance(fam, dict) else None
        return arch_fields[arch]["fields"] if arch in arch_fields else None

    def ranges(where: str, family: dict[str, Any], *args: Any, **kwargs: Any) -> list[str]:
        """:func:`hyperparameter_problems` on the names and values name_problems found well-formed."""
        arch = family.get("architecture")
        if isinstance(arch, str) and arch not in arch_fields and not family.get("plugin"):
            return []  # an unknown architecture: name_problems reports it
        return hyperparameter_problems(where, family, *args, fields=fields_of(family), **kwargs)

    families = cfg.get("families", {}) or {}
    arch_defaults = cfg.get("arch_defaults", {}) or {}
    syn = cfg.get("synthetic")
    if syn is not None:
        for name in syn["families"]:
            if name not in families:
                problems.append(f"synthetic.families lists {name!r}, which is not defined under families "
                                f"(defined: {', '.join(families)})")
        datasets = [f"rho{r}" for r in syn["rhos"]]
        for dataset, names in (syn.get("pairs") or {}).items():
            if dataset not in datasets:
                problems.append(f"synthetic.pairs.{dataset}: not a dataset of synthetic.rhos "
                                f"(datasets: {', '.join(datasets)})")
            for name in names:
                if name not in syn["families"]:
                    problems.append(f"synthetic.pairs.{dataset} lists {name!r}, which is not in synthetic.families")
        train = syn["train"]
        problems += spread_problems(syn)
        if train.get("dead_window_steps", 1000) > train["steps"]:
            problems.append(f"synthetic.train.dead_window_steps = {train.get('dead_window_steps', 1000)} exceeds "
                            f"synthetic.train.steps = {train['steps']}: use a window ≤ steps")
        if syn["k"] > syn["m"]:
            problems.append(f"synthetic.k = {syn['k']} exceeds synthetic.m = {syn['m']}: need k ≤ m")
        lo, hi = syn.get("magnitude", [1.0, 3.0])
        if lo > hi:
            problems.append(f"synthetic.magnitude = {syn.get('magnitude')}: need low ≤ high")
        for name in syn["families"]:
            if name in families:
                problems += ranges(f"families.{name}", families[name], arch_defaults,
                                                    syn["m"], "synthetic.m")
        for name, abl in (cfg.get("ablations") or {}).items():
            if abl["base"] not in families:
                problems.append(f"ablations.{name}.base = {abl['base']!r}: not a family "
                                f"(defined: {', '.join(families)})")
                continue
            for dataset in abl.get("datasets") or []:
                if dataset not in datasets:
                    problems.append(f"ablations.{name}.datasets lists {dataset!r}; known datasets: {', '.join(datasets)}")
            base = families[abl["base"]]
            for arm, overrides in abl["arms"].items():
                merged = {"architecture": base.get("architecture"),
                          "fixed": {**(base.get("fixed") or {}), **(abl.get("fixed") or {}), **(overrides or {})}}
                problems += ranges(f"ablations.{name}.arms.{arm}", merged, arch_defaults,
                                                    syn["m"], "synthetic.m")
        for name, variant in (cfg.get("variants") or {}).items():
            problems += ranges(f"variants.{name}", variant, arch_defaults, syn["m"], "synthetic.m")
    ss = cfg.get("synthsae")
    if ss is not None:
        for name in ss["families"]:
            if name not in families:
                problems.append(f"synthsae.families lists {name!r}, which is not defined under families "
                                f"(defined: {', '.join(families)})")
            else:
                problems += ranges(f"families.{name}", families[name], arch_defaults,
                                                    ss["width"], "synthsae.width")
        if ss["train"].get("dead_window_steps", 1000) > ss["train"]["steps"]:
            problems.append(f"synthsae.train.dead_window_steps = {ss['train'].get('dead_window_steps', 1000)} exceeds "
                            f"synthsae.train.steps = {ss['train']['steps']}: use a window ≤ steps")
    llm = cfg.get("llm")
    if llm is not None:
        train = llm["train"]
        if train.get("dead_window_steps", 1000) > train["steps"]:
            problems.append(f"llm.train.dead_window_steps = {train.get('dead_window_steps', 1000)} exceeds "
                            f"llm.train.steps = {train['steps']}: use a window ≤ steps")
        if llm["eval"]["ce_contexts"] > llm["harvest"]["eval_contexts"]:
            problems.append(f"llm.eval.ce_contexts = {llm['eval']['ce_contexts']} exceeds llm.harvest.eval_contexts = "
                            f"{llm['harvest']['eval_contexts']}: need ce_contexts ≤ eval_contexts")
        for name, fam in llm["families"].items():
            problems += ranges(f"llm.families.{name}", fam, llm.get("arch_defaults", {}) or {},
                                                llm["width"], "llm.width", "llm.arch_defaults")
    problems += grid_size_problems(cfg, tables)
    return problems
