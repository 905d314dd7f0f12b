"""Feature schema: which parquet columns exist, their types, tags and cardinalities.

Reads the Merlin / Transformers4Rec schema in protobuf text format (``schema.pbtxt``), a JSON
form of the same structure, or infers a schema from parquet files. Cardinality of a categorical
feature is ``int_domain.max + 1`` (id 0 is padding), as in Transformers4Rec.

Tags that matter: ``item_id`` (the predicted feature, exactly one), ``categorical``,
``continuous``, ``list`` and ``time`` (loaded, never a model input).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sessrec.errors import SessrecError
from sessrec.io import reading

log = logging.getLogger(__name__)

ITEM_ID = "item_id"
CATEGORICAL = "categorical"
CONTINUOUS = "continuous"
TIME = "time"
LIST = "list"


@dataclass(frozen=True)
class FeatureSpec:
    """One column of the session table."""

    name: str
    dtype: str  # "int" or "float"
    tags: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    value_count_min: int | None = None
    value_count_max: int | None = None

    @property
    def is_item_id(self) -> bool:
        return ITEM_ID in self.tags

    @property
    def is_categorical(self) -> bool:
        return self.dtype == "int" and (CATEGORICAL in self.tags or ITEM_ID in self.tags)

    @property
    def is_continuous(self) -> bool:
        return CONTINUOUS in self.tags and not self.is_time

    @property
    def is_time(self) -> bool:
        return TIME in self.tags

    @property
    def cardinality(self) -> int | None:
        """Embedding table size: ``int_domain.max + 1`` (index 0 is padding)."""
        if self.dtype != "int" or self.max_value is None:
            return None
        return int(self.max_value) + 1


@dataclass
class Schema:
    """An ordered set of features with exactly one ``item_id`` feature."""

    features: list[FeatureSpec]
    source: str = "<memory>"
    _by_name: dict[str, FeatureSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.features = _dedupe(self.features, self.source)
        self._by_name = {f.name: f for f in self.features}
        items = [f for f in self.features if f.is_item_id]
        if not items:
            raise SessrecError(f"schema {self.source}: no feature is tagged 'item_id'")
        if len(items) > 1:
            names = ", ".join(f.name for f in items)
            raise SessrecError(f"schema {self.source}: more than one feature tagged 'item_id' ({names})")
        if items[0].dtype != "int":
            raise SessrecError(f"schema {self.source}: item_id feature '{items[0].name}' must be of type INT")

    def __getitem__(self, name: str) -> FeatureSpec:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def item_id(self) -> FeatureSpec:
        return next(f for f in self.features if f.is_item_id)

    @property
    def n_items(self) -> int:
        """Size of the item table (ids 0..n_items-1, 0 = padding)."""
        card = self.item_id.cardinality
        if card is None:
            raise SessrecError(f"schema {self.source}: item_id feature '{self.item_id.name}' has no int_domain max")
        return card

    @property
    def time_feature(self) -> FeatureSpec | None:
        """The per-interaction time column (the first feature tagged ``time``), None without one."""
        return next((f for f in self.features if f.is_time), None)

    def model_features(self, use_side_information: bool) -> list[FeatureSpec]:
        """Features fed to the model: the item id, plus side information when asked for."""
        if not use_side_information:
            return [self.item_id]
        return [f for f in self.features if f.is_item_id or f.is_categorical or f.is_continuous]

    def select(self, names: Iterable[str]) -> Schema:
        keep = set(names)
        return Schema([f for f in self.features if f.name in keep], source=self.source)

    def with_item_cardinality(self, cardinality: int) -> Schema:
        item = self.item_id
        feats = [replace(f, max_value=cardinality - 1) if f is item else f for f in self.features]
        return Schema(feats, source=self.source)

    # ---- writers -------------------------------------------------------------------------------
    def to_pbtxt(self) -> str:
        return "\n".join(_feature_pbtxt(f) for f in self.features)

    def to_dict(self) -> dict:
        return {"feature": [_feature_dict(f) for f in self.features]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        from sessrec.io import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.to_json() if path.suffix == ".json" else self.to_pbtxt())


def _dedupe(features: Sequence[FeatureSpec], source: str) -> list[FeatureSpec]:
    seen: dict[str, FeatureSpec] = {}
    for f in features:
        if f.name in seen:
            if seen[f.name] != f:
                raise SessrecError(f"schema {source}: feature '{f.name}' is declared twice with different definitions")
            log.warning("schema %s: feature '%s' is declared twice; the identical duplicate is ignored", source, f.name)
            continue
        seen[f.name] = f
    return list(seen.values())


# ---- protobuf text format -------------------------------------------------------------------------
_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([{}:\[\],])|([^\s{}:\[\],"#]+))', re.S)


def _tokens(text: str, source: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SessrecError(f"schema {source}: cannot parse near character {pos}: {text[pos:pos + 30]!r}")
        pos = m.end()
        if m.group(1) is None:
            out.append(m.group(2) or m.group(3) or m.group(4))
    return out


def _parse_message(tokens: list[str], i: int, source: str, closing: str | None) -> tuple[dict, int]:
    msg: dict[str, list] = {}
    while i < len(tokens):
        tok = tokens[i]
        if tok == closing:
            return msg, i + 1
        if tok in "{}:[],":
            raise SessrecError(f"schema {source}: unexpected '{tok}'")
        key, i = tok, i + 1
        if i < len(tokens) and tokens[i] == ":":
            i += 1
        if i >= len(tokens):
            raise SessrecError(f"schema {source}: missing value for '{key}'")
        if tokens[i] in ("{", "<"):
            value, i = _parse_message(tokens, i + 1, source, "}" if tokens[i] == "{" else ">")
        else:
            value, i = _scalar(tokens[i]), i + 1
        msg.setdefault(key, []).append(value)
    if closing is not None:
        raise SessrecError(f"schema {source}: unbalanced braces")
    return msg, i


def _scalar(tok: str):
    if tok.startswith('"'):
        return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
    if tok in ("true", "True"):
        return True
    if tok in ("false", "False"):
        return False
    try:
        return int(tok)
    except ValueError:
        try:
            return float(tok)
        except ValueError:
            return tok  # enum value such as INT / FLOAT


def _first(msg: dict, key: str, default=None):
    values = msg.get(key)
    return values[0] if values else default


def _feature_from_message(msg: dict, source: str) -> FeatureSpec:
    name = _first(msg, "name")
    if not name:
        raise SessrecError(f"schema {source}: a feature has no name")
    ftype = str(_first(msg, "type", "")).upper()
    int_domain, float_domain = _first(msg, "int_domain"), _first(msg, "float_domain")
    if ftype in ("INT", "INT64", "INT32") or (not ftype and int_domain):
        dtype, domain = "int", int_domain
    elif ftype in ("FLOAT", "FLOAT32", "FLOAT64", "DOUBLE") or (not ftype and float_domain):
        dtype, domain = "float", float_domain
    else:
        raise SessrecError(f"schema {source}: feature '{name}' has unsupported type '{ftype or '?'}'")
    tags: list[str] = []
    for ann in msg.get("annotation", []):
        tags.extend(str(t) for t in ann.get("tag", []))
    if domain and _first(domain, "is_categorical") and CATEGORICAL not in tags:
        tags.append(CATEGORICAL)
    vc = _first(msg, "value_count") or {}
    spec = FeatureSpec(
        name=str(name),
        dtype=dtype,
        tags=tuple(tags),
        min_value=_number(_first(domain, "min"), dtype) if domain else None,
        max_value=_number(_first(domain, "max"), dtype) if domain else None,
        value_count_min=_number(_first(vc, "min"), "int"),
        value_count_max=_number(_first(vc, "max"), "int"),
    )
    _check_bounds(spec, source)
    return spec


def _number(value: Any, dtype: str) -> Any:
    """A bound as its number: protobuf's JSON writes int64 as text ("390000"), and a whole float (100.0) is its
    integer in an int domain; anything else is left for :func:`_check_bounds` to name."""
    if isinstance(value, str):
        try:
            value = int(value) if re.fullmatch(r"\s*-?\d+\s*", value) else float(value)
        except ValueError:
            return value
    if dtype == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


MAX_CARDINALITY = 2**31 - 1  # rows of an embedding table torch indexes (and far beyond any memory at d_model 64)


def _check_bounds(f: FeatureSpec, source: str) -> None:
    """One line naming the feature for a domain or value count a model cannot be built from (they were tracebacks
    from int() or from torch allocating a negative or 19 TB table)."""
    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    where = f"schema {source}: feature '{f.name}'"
    for key, v in (("min", f.min_value), ("max", f.max_value)):
        if v is not None and (not whole(v) if f.dtype == "int" else isinstance(v, bool) or not isinstance(v, (int, float))):
            kind = "an integer" if f.dtype == "int" else "a number"
            raise SessrecError(f"{where}: {'int' if f.dtype == 'int' else 'float'}_domain {key} must be {kind} (got {v!r})")
    if (f.is_categorical or f.is_item_id) and f.max_value is not None:  # its ids index an embedding table
        if not 1 <= f.max_value < MAX_CARDINALITY:
            raise SessrecError(f"{where}: int_domain max {f.max_value} of a categorical feature must be an id in "
                               f"1..{MAX_CARDINALITY - 1} (ids 1..max; 0 is padding; the table has max + 1 rows)")
    for key, v, low in (("min", f.value_count_min, 0), ("max", f.value_count_max, 1)):
        if v is not None and (not whole(v) or v < low):
            raise SessrecError(f"{where}: value_count {key} must be a whole number >= {low} (got {v!r})")


def parse_pbtxt(text: str, source: str = "<text>") -> Schema:
    msg, _ = _parse_message(_tokens(text, source), 0, source, None)
    feats = [_feature_from_message(f, source) for f in msg.get("feature", [])]
    if not feats:
        raise SessrecError(f"schema {source}: no 'feature' entries found")
    return Schema(feats, source=source)


def _listify(d: dict) -> dict:
    """JSON objects use plain values; normalise them to the parser's repeated-field lists."""
    out = {}
    for k, v in d.items():
        vals = v if isinstance(v, list) else [v]
        out[k] = [_listify(x) if isinstance(x, dict) else x for x in vals]
    return out


def parse_json(text: str, source: str = "<json>") -> Schema:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SessrecError(f"schema {source}: invalid JSON ({e})") from None
    feats = data.get("feature") if isinstance(data, dict) else None
    if not feats:
        raise SessrecError(f"schema {source}: expected an object with a 'feature' list")
    return Schema([_feature_from_message(_listify(f), source) for f in feats], source=source)


# ---- the original YAML feature map (recsys2021 ``--feature_config``) --------------------------------
_YAML_KEYS = {"dtype", "cardinality", "is_label", "emb_table", "is_control", "log_with_preds_as_metadata", "pad_trim_length"}


def parse_feature_yaml(text: str, source: str = "<yaml>") -> Schema:
    """The original Transformers4Rec YAML feature map (``--feature_config``) as a schema.

    Each entry is ``name: {dtype, cardinality, is_label, emb_table, is_control, ...}``. ``dtype``
    ``categorical`` becomes a categorical INT feature whose ``cardinality`` is the table size (ids
    ``0..cardinality-1``, so ``int_domain.max = cardinality - 1``); ``is_label`` marks the item id;
    ``float``/``long`` are continuous features; ``timestamp`` and ``is_control`` features are loaded
    but never model inputs (tag ``time``). ``log_with_preds_as_metadata`` only concerned the
    original's prediction logs and has no effect.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SessrecError(f"feature config {source}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise SessrecError(f"feature config {source}: expected a mapping of feature names to their settings")
    feats, tables = [], {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise SessrecError(f"feature config {source}: feature '{name}' must map to its settings (dtype, cardinality, ...)")
        unknown = sorted(set(spec) - _YAML_KEYS)
        if unknown:
            raise SessrecError(f"feature config {source}: feature '{name}' has unknown key(s) {', '.join(unknown)}")
        dtype, label, control = spec.get("dtype"), bool(spec.get("is_label")), bool(spec.get("is_control"))
        vc = {"value_count_max": spec.get("pad_trim_length")}
        if vc["value_count_max"] is not None and (not isinstance(vc["value_count_max"], int)
                                                  or isinstance(vc["value_count_max"], bool) or vc["value_count_max"] < 1):
            raise SessrecError(f"feature config {source}: feature '{name}' needs a whole pad_trim_length >= 1 (got "
                               f"{vc['value_count_max']!r})")
        if dtype == "categorical":
            card = spec.get("cardinality")
            if not isinstance(card, int) or isinstance(card, bool) or not 2 <= card <= MAX_CARDINALITY:
                raise SessrecError(f"feature config {source}: categorical feature '{name}' needs an integer cardinality "
                                   f"in 2..{MAX_CARDINALITY}")
            tags = (LIST,) if control else ((ITEM_ID, LIST, CATEGORICAL) if label else (LIST, CATEGORICAL))
            feats.append(FeatureSpec(str(name), "int", tags, 1, card - 1, **vc))
            table = spec.get("emb_table", name)
            if table in tables and not control:
                log.warning("feature config %s: '%s' shares embedding table '%s' with '%s'; sessrec gives each feature its own table",
                            source, name, table, tables[table])
            tables.setdefault(table, name)
        elif dtype in ("float", "long", "timestamp"):
            if label:
                raise SessrecError(f"feature config {source}: the label '{name}' must be categorical (dtype {dtype})")
            time_like = control or dtype == "timestamp"
            feats.append(FeatureSpec(str(name), "float", (LIST, TIME) if time_like else (LIST, CONTINUOUS), **vc))
        else:
            raise SessrecError(f"feature config {source}: feature '{name}' has dtype '{dtype}' (expected categorical, float, long or timestamp)")
    if not any(f.is_item_id for f in feats):
        raise SessrecError(f"feature config {source}: no feature has 'is_label: True' (the item id to predict)")
    return Schema(feats, source=source)


def load_schema(path: str | Path) -> Schema:
    """Read a schema from ``.pbtxt`` (protobuf text), ``.json`` or the original ``.yaml`` feature map."""
    path = Path(path)
    if path.is_dir():
        raise SessrecError(f"schema path {path} is a folder: give the schema file (schema.pbtxt or schema.json, or the "
                           "paper's feature config .yaml)")
    if not path.is_file():
        hint = ""
        if path.suffix in (".yaml", ".yml") and path.parent.name == "features":  # the paper's datasets/<set>/config/features/
            hint = (f"; the paper's feature YAMLs are in the sessrec repository's tests/data/feature_configs/<data set>/"
                    f"{path.name}")
        raise SessrecError(f"schema file not found: {path}{hint}")
    with reading(path):
        text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        return parse_feature_yaml(text, str(path))
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        return parse_json(text, str(path))
    return parse_pbtxt(text, str(path))


def _feature_dict(f: FeatureSpec) -> dict:
    d: dict = {"name": f.name, "type": "INT" if f.dtype == "int" else "FLOAT"}
    if f.value_count_min is not None or f.value_count_max is not None:
        d["value_count"] = {k: v for k, v in (("min", f.value_count_min), ("max", f.value_count_max)) if v is not None}
    domain = {"name": f.name}
    if f.min_value is not None:
        domain["min"] = f.min_value
    if f.max_value is not None:
        domain["max"] = f.max_value
    if f.dtype == "int":
        if f.is_categorical:
            domain["is_categorical"] = True
        d["int_domain"] = domain
    else:
        d["float_domain"] = domain
    d["annotation"] = {"tag": list(f.tags)}
    return d


def _feature_pbtxt(f: FeatureSpec) -> str:
    def block(name: str, body: dict, indent: str) -> list[str]:
        lines = [f"{indent}{name} {{"]
        for k, v in body.items():
            for x in v if isinstance(v, list) else [v]:
                if isinstance(x, dict):
                    lines += block(k, x, indent + "  ")
                elif isinstance(x, bool):
                    lines.append(f"{indent}  {k}: {'true' if x else 'false'}")
                elif isinstance(x, str) and k != "type":
                    lines.append(f'{indent}  {k}: "{x}"')
                else:
                    lines.append(f"{indent}  {k}: {x}")
        return lines + [f"{indent}}}"]

    return "\n".join(block("feature", _feature_dict(f), "")) + "\n"


# ---- inference from parquet -----------------------------------------------------------------------
_TIME_NAME = re.compile(r"(etime|timestamp|(^|[_-])ts([_-]|$)|time_seq)", re.I)
_ITEM_NAMES = ("item_id", "item_id-list", "sess_pid_seq", "click_article_id", "article_id", "itemid", "item")


def infer_schema(files: Sequence[str | Path], item_id: str | None = None) -> Schema:
    """Build a schema from the list columns of parquet files.

    Integer list columns become categorical (cardinality = max id seen + 1), float list columns
    continuous, columns named like timestamps are tagged ``time``. The item id column is ``item_id`` if given, else the first column with a usual
    item-id name.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from sessrec.io import read_parquet

    if not files:
        raise SessrecError("cannot infer a schema: no parquet files found")
    pq_schema = pq.read_schema(files[0])
    list_cols = {}
    for fld in pq_schema:
        if pa.types.is_list(fld.type) or pa.types.is_large_list(fld.type):
            vt = fld.type.value_type
            if pa.types.is_integer(vt):
                list_cols[fld.name] = "int"
            elif pa.types.is_floating(vt):
                list_cols[fld.name] = "float"
    if item_id is None:
        item_id = next((n for n in _ITEM_NAMES if list_cols.get(n) == "int"), None)
    if item_id is None or list_cols.get(item_id) != "int":
        raise SessrecError(
            f"cannot infer a schema from {files[0]}: no integer list column named like an item id "
            f"({', '.join(_ITEM_NAMES)}); pass --schema FILE"
        )
    maxima = dict.fromkeys((n for n, t in list_cols.items() if t == "int"), 0)
    for path in files:
        other = pq.read_schema(path) if path != files[0] else pq_schema
        for name in maxima:  # a later window written otherwise: a KeyError or a TypeError from deep in the reader
            if name not in other.names:
                raise SessrecError(f"{path} has no column {name} (the first file, {files[0]}, has it): every window's "
                                   "files must have the same columns; pass --schema FILE, or prepare the data again")
            vt = getattr(other.field(name).type, "value_type", None)
            if vt is None or not pa.types.is_integer(vt):
                raise SessrecError(f"{path}: column {name} is {other.field(name).type}, in the first file ({files[0]}) "
                                   "a list of integers: every window's files must have the same column types")
        table = read_parquet(path, list(maxima))
        for name in maxima:
            m = pc.max(pc.list_flatten(table.column(name))).as_py()
            maxima[name] = max(maxima[name], m or 0)
    feats = []
    for name, dtype in list_cols.items():
        if name != item_id and _TIME_NAME.search(name):
            feats.append(FeatureSpec(name, dtype, (LIST, TIME)))
        elif name == item_id:
            feats.append(FeatureSpec(name, "int", (ITEM_ID, LIST, CATEGORICAL), 1, maxima[name]))
        elif dtype == "int":
            feats.append(FeatureSpec(name, "int", (LIST, CATEGORICAL), 1, maxima[name]))
        else:
            feats.append(FeatureSpec(name, "float", (LIST, CONTINUOUS)))
    return Schema(feats, source=f"inferred from {Path(files[0]).parent.parent}")
