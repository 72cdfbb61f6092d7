"""Docs the code keeps true: every module under workflows/ has its line in docs/architecture.md's table, and
every DuckDB table the code creates has its row in docs/data.md. Tables are defined in one module
(`workflows/data/tables.py`'s `TABLES`); a `CREATE TABLE` anywhere else in workflows/ fails here, and so does
adding a module or a table without its docs line, with what to add."""

import re
from pathlib import Path

from workflows.data.tables import TABLES
from workflows_tests.helpers import PROJECT_ROOT

ROW = re.compile(r"^\s+\d+\s{4}(\S.*?)\s{2,}(.*)$")
CREATE = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)", re.IGNORECASE)


def table_rows(architecture: str) -> dict[str, str]:
    """Package column -> the row's text (continuation lines included), from the first code block that starts
    with `layer  package`."""
    block = architecture.split("```\nlayer  package", 1)[1].split("```", 1)[0]
    rows: dict[str, str] = {}
    current = None
    for line in block.splitlines()[1:]:
        if m := ROW.match(line):
            current = m.group(1).strip()
            rows[current] = m.group(2)
        elif current is not None and line.strip():
            rows[current] += " " + line.strip()
    return rows


def undocumented_modules(root: Path, architecture: str, top: str = "workflows") -> list[str]:
    """Modules of `top` whose file name is not in their package's row of the table (a top-level module: not in
    the package column of any row)."""
    rows = table_rows(architecture)
    missing = []
    for path in sorted((root / top).rglob("*.py")):
        rel = path.relative_to(root / top)
        if path.name == "__init__.py" or "__pycache__" in rel.parts:
            continue
        if len(rel.parts) == 1:
            known = any(path.name in column.replace(",", " ").split() for column in rows)
        else:
            text = next((t for column, t in rows.items() if column == f"{rel.parts[0]}/"), "")
            known = re.search(rf"(?<![\w.]){re.escape(path.name)}(?!\w)", text) is not None
        if not known:
            missing.append(str(rel))
    return missing


def created_tables(root: Path, top: str = "workflows") -> dict[str, str]:
    """Table name -> the file that creates it, for every `CREATE TABLE` in `top`."""
    found = {}
    for path in sorted((root / top).rglob("*.py")):
        for name in CREATE.findall(path.read_text()):
            found.setdefault(name, str(path.relative_to(root)))
    return found


def undocumented_tables(tables: dict[str, str], data_md: str) -> list[str]:
    section = data_md.split("## What is in the warehouse", 1)[-1].split("\n## ", 1)[0]
    return [f"{name} (created in {file})" for name, file in sorted(tables.items()) if f"| `{name}` |" not in section]


def test_every_module_has_its_line_in_the_architecture_table():
    missing = undocumented_modules(PROJECT_ROOT, (PROJECT_ROOT / "docs" / "architecture.md").read_text())
    assert not missing, "modules missing from docs/architecture.md's table (name them in their package's row):\n" + (
        "\n".join(missing)
    )


SCHEMA_MODULE = "workflows/data/tables.py"


def test_tables_are_defined_in_the_schema_module_only():
    tables = created_tables(PROJECT_ROOT)
    assert {"candles", "features", "forecast_log", "period_models"} <= tables.keys()  # the scan finds them
    elsewhere = [f"{name} (created in {file})" for name, file in sorted(tables.items()) if file != SCHEMA_MODULE]
    assert not elsewhere, f"CREATE TABLE outside {SCHEMA_MODULE} (move its DDL into TABLES there):\n" + (
        "\n".join(elsewhere)
    )
    assert set(TABLES) == set(tables), "every TABLES entry creates the table it is named after"


def test_every_duckdb_table_has_its_row_in_data_md():
    tables = dict.fromkeys(TABLES, SCHEMA_MODULE)
    missing = undocumented_tables(tables, (PROJECT_ROOT / "docs" / "data.md").read_text())
    assert not missing, "tables missing from docs/data.md's warehouse table (add a `| `name` | ... |` row):\n" + (
        "\n".join(missing)
    )


ARCHITECTURE = """
```
layer  package                what it holds
  1    data/                  sources/ (files.py), warehouse.py,
                              features.py
  0    settings.py, io.py     paths
```
"""


def test_a_module_without_its_line_is_caught(tmp_path):
    pkg = tmp_path / "workflows"
    (pkg / "data" / "sources").mkdir(parents=True)
    for name in ("__init__.py", "settings.py", "io.py", "records.py"):
        (pkg / name).write_text("")
    for name in ("__init__.py", "warehouse.py", "features.py", "feature_state.py", "sources/files.py"):
        (pkg / "data" / name).write_text("")
    (pkg / "data" / "sources" / "exchange.py").write_text("")
    assert undocumented_modules(tmp_path, ARCHITECTURE) == [
        "data/feature_state.py",  # features.py is named, feature_state.py is not
        "data/sources/exchange.py",
        "records.py",
    ]


def test_a_table_without_its_row_is_caught(tmp_path):
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "store.py").write_text(
        'DDL = "CREATE TABLE IF NOT EXISTS candles (x INT)"\nOTHER = ("create table new_table (y INT)")\n'
    )
    tables = created_tables(tmp_path)
    assert tables == {"candles": "workflows/store.py", "new_table": "workflows/store.py"}
    data_md = "# Data\n\n## What is in the warehouse\n\n| table | content |\n| --- | --- |\n| `candles` | rows |\n"
    assert undocumented_tables(tables, data_md) == ["new_table (created in workflows/store.py)"]
    assert undocumented_tables(tables, data_md + "| `new_table` | more rows |\n") == []
