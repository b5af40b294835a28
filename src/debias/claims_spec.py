"""config/claims.yaml: every claim of the papers as a quantity over the tidy tables, checked before any job.

``load`` validates the file against workflow/schemas/claims.schema.yaml, then what a schema cannot say: ids
unique, each claim's paper known and the one its table reproduces, its quantity parses, and every cell names a
measure (column) and keys of its table, and values the table can have (methods: the config's rows and the
registered methods). Every problem is reported at once, each naming the file, the claim and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from debias import claims_expr as ex
from debias.claims_tables import TABLES, Layout
from debias.errors import InputError

CLAIMS_FILE = "config/claims.yaml"
SCHEMA_FILE = "workflow/schemas/claims.schema.yaml"


class ClaimsError(InputError, ValueError):
    """config/claims.yaml is not what the schema, the tables or the config allow."""


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    statement: str
    table: str
    quantity: str
    expr: ex.Node
    direction: str
    paper_value: float | None
    source: str
    tolerance: float
    tolerance_source: str
    note: str = ""


@dataclass(frozen=True)
class ClaimsSpec:
    claims: list[Claim]
    papers: dict[str, str]
    cell_tolerance_points: float
    printed_spread: dict[str, dict[str, dict[str, float]]]


def load(path: str | Path = CLAIMS_FILE, schema: str | Path = SCHEMA_FILE,
         config: dict[str, Any] | None = None) -> ClaimsSpec:
    """The claims of ``path``; ClaimsError listing every problem. ``config`` (the run's) widens the known methods
    by its rows."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ClaimsError(f"{path}: no such file (the papers' claims; see {CLAIMS_FILE} in the repository)") from None
    except yaml.YAMLError as err:
        raise ClaimsError(f"{path}: not valid YAML: {err}") from None
    errors = _schema_errors(doc, schema)
    if not errors:
        errors = _semantic_errors(doc, config)
    if errors:
        raise ClaimsError(f"{path}: invalid claims file:\n  " + "\n  ".join(errors))
    return _spec(doc)


def _where(doc: Any, path: list) -> str:
    """``claim <id>, key <key>`` for an error inside a claim, else the key path."""
    if len(path) >= 2 and path[0] == "claims" and isinstance(path[1], int):
        items = doc.get("claims") or []
        cid = items[path[1]].get("id") if path[1] < len(items) and isinstance(items[path[1]], dict) else None
        claim = f"claim {cid!r}" if isinstance(cid, str) else f"claims[{path[1]}]"
        rest = ".".join(map(str, path[2:]))
        return f"{claim}, key {rest}" if rest else claim
    return "key " + (".".join(map(str, path)) or "<top level>")


def _schema_errors(doc: Any, schema: str | Path) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(yaml.safe_load(Path(schema).read_text()))
    return [f"{_where(doc, list(e.absolute_path))}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def _semantic_errors(doc: dict, config: dict | None) -> list[str]:
    errors, seen = [], set()
    for i, c in enumerate(doc["claims"]):
        where = f"claim {c['id']!r}"
        if c["id"] in seen:
            errors.append(f"{where}, key id: given twice (ids must be unique)")
        seen.add(c["id"])
        if c["paper"] not in doc["papers"]:
            errors.append(f"{where}, key paper: unknown paper {c['paper']!r}; known: {', '.join(doc['papers'])}")
        if c["table"] not in TABLES:
            errors.append(f"{where}, key table: unknown table {c['table']!r}; known: {', '.join(TABLES)}")
            continue
        layout = TABLES[c["table"]]
        if c["paper"] != layout.paper:
            errors.append(f"{where}, key paper: {c['paper']!r}, but table {c['table']} reproduces paper "
                          f"{layout.paper}'s results")
        if "tolerance" not in c and layout.points is None:
            errors.append(f"{where}, key tolerance: missing; table {c['table']} counts images, which have no "
                          "points: give the tolerance in images")
        try:
            node = ex.parse(c["quantity"])
        except ex.ExpressionError as err:
            errors.append(f"{where}, key quantity: {err}")
            continue
        if not ex.cells(node):
            errors.append(f"{where}, key quantity: {c['quantity']!r} reads no cell of table {c['table']}")
        errors += [f"{where}, key quantity: {e}" for cell in ex.cells(node) for e in cell_errors(cell, c["table"],
                                                                                                  config)]
    errors += _spread_errors(doc["cells"]["printed_spread"])
    return errors


def cell_errors(cell: ex.Cell, table: str, config: dict | None) -> list[str]:
    """What is wrong with one cell of ``table``: an unknown measure (column), key or value."""
    layout = TABLES[table]
    out = []
    if cell.measure not in layout.measures:
        out.append(f"unknown column {cell.measure!r} of table {table} in {cell.text()}; known: "
                   f"{', '.join(layout.measures)}")
    for key, sel in cell.selectors:
        if key not in layout.keys:
            out.append(f"unknown key {key!r} of table {table} in {cell.text()}; known: {', '.join(layout.keys)}")
            continue
        allowed = known_values(layout, key, config)
        if allowed is None or sel == ex.ANY:
            continue
        for value in sel:
            if str(value) not in allowed:
                what = "method" if key in layout.method_keys else "value"
                out.append(f"unknown {what} {value!r} for key {key!r} of table {table} in {cell.text()}; "
                           f"known: {', '.join(sorted(allowed))}")
    return out


def known_values(layout: Layout, key: str, config: dict | None) -> set[str] | None:
    """The values ``key`` of a table may take, or None where they are open (numbers, unknowable here)."""
    if key in layout.values:
        return set(layout.values[key])
    if key not in layout.method_keys:
        return None
    from debias.config import registry

    known: set[str] = set()
    section = config
    for part in layout.config_rows:
        section = section.get(part) if isinstance(section, dict) else None
    if isinstance(section, (list, dict)):
        known |= set(map(str, section))
    methods = registry()
    if methods is not None:
        known |= set(methods.registry.names())
    return known or None


def _spread_errors(spread: dict) -> list[str]:
    out = []
    for table, rows in spread.items():
        where = f"key cells.printed_spread.{table}"
        if table not in TABLES:
            out.append(f"{where}: unknown table {table!r}; known: {', '.join(TABLES)}")
            continue
        layout = TABLES[table]
        for row, measures in rows.items():
            parts = row.split("/")
            if len(parts) != len(layout.keys):
                out.append(f"{where}.{row}: a row is its {'/'.join(layout.keys)} values joined by '/'")
                continue
            for key, value in zip(layout.keys, parts):
                allowed = layout.values.get(key)
                if allowed is not None and value not in allowed:
                    out.append(f"{where}.{row}: unknown value {value!r} of {key}; known: {', '.join(allowed)}")
            for m in measures:
                if m not in layout.measures:
                    out.append(f"{where}.{row}.{m}: unknown column {m!r} of table {table}; known: "
                               f"{', '.join(layout.measures)}")
    return out


def _spec(doc: dict) -> ClaimsSpec:
    points = doc["defaults"]["tolerance_points"]
    claims = []
    for c in doc["claims"]:
        layout = TABLES[c["table"]]
        if "tolerance" in c:
            tol, tol_source = float(c["tolerance"]), c.get("tolerance_source", "given in the claims file")
        else:
            tol = points * layout.points
            tol_source = f"default: {points:g} points"
        claims.append(Claim(c["id"], c["paper"], c["statement"].strip(), c["table"], c["quantity"],
                            ex.parse(c["quantity"]), c["direction"], c["paper_value"], c["source"].strip(), tol,
                            tol_source, c.get("note", "").strip()))
    return ClaimsSpec(claims, dict(doc["papers"]), float(doc["cells"]["tolerance_points"]),
                      doc["cells"]["printed_spread"])
