"""The package imports only downward: a test builds the dependency graph from the imports.

Layers, lowest first. A package may import packages of a lower layer, never one of its own
layer or above. `stats`, `settings` and `io` are leaves every layer may use.
"""

import ast
from pathlib import Path

from workflows_tests.helpers import PROJECT_ROOT

LAYERS: list[set[str]] = [
    {"settings", "io", "records", "stats"},  # leaves
    {"data"},  # sources, ingest, quality, schemas, features, warehouse, retention
    {"ml"},  # models, training, windows, the registry of model kinds, checkpoints
    {"evaluation", "attention"},  # forecasts judged; attention read and tested
    {"serving"},  # the promotion gate and the served forecast
    {"reporting"},  # figures, Markdown, the report, the study's reproduction
    {"defs"},  # the Dagster layer only
    {"definitions"},  # the code location: loads defs/
    {"cli"},  # commands and terminal
]


def _rank(package: str) -> int:
    for i, layer in enumerate(LAYERS):
        if package in layer:
            return i
    raise AssertionError(f"workflows.{package} is in no layer: place it in LAYERS (test_layers.py)")


def import_edges(root: Path, top: str = "workflows") -> set[tuple[str, str, str]]:
    """(importing file, importing package, imported package) for every import of `top.X` in another
    package of `top` (function-level and TYPE_CHECKING imports included)."""
    edges = set()
    for path in sorted((root / top).rglob("*.py")):
        rel = path.relative_to(root / top).with_suffix("")
        src = rel.parts[0]
        if src == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{top}.{a.name}" for a in node.names] if node.module == top else [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for name in targets:
                parts = name.split(".")
                if parts[0] == top and len(parts) > 1 and parts[1] != src:
                    edges.add((str(path.relative_to(root)), src, parts[1]))
    return edges


def upward(edges: set[tuple[str, str, str]]) -> list[str]:
    return sorted(
        f"{file}: {src} (layer {_rank(src)}) imports {dst} (layer {_rank(dst)})"
        for file, src, dst in edges
        if _rank(dst) >= _rank(src)
    )


def test_every_package_imports_only_downward():
    edges = import_edges(PROJECT_ROOT)
    assert len(edges) > 20, "the graph is empty: the import scan found nothing"
    bad = upward(edges)
    assert not bad, "imports that point upward or sideways:\n" + "\n".join(bad)


def test_every_package_is_in_a_layer():
    packages = {p.name for p in (PROJECT_ROOT / "workflows").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in (PROJECT_ROOT / "workflows").glob("*.py") if p.stem != "__init__"}
    for name in packages | modules:
        _rank(name)


def test_an_upward_import_is_caught(tmp_path):
    pkg = tmp_path / "workflows"
    for sub in ("data", "ml", "stats"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "ml" / "fit.py").write_text("from workflows.data.x import y\nfrom workflows.stats import z\n")
    (pkg / "data" / "store.py").write_text("def f():\n    from workflows.ml.fit import g\n")
    (pkg / "stats" / "t.py").write_text("import workflows.data.store\n")
    bad = upward(import_edges(tmp_path))
    assert len(bad) == 2, bad
    assert any("data (layer 1) imports ml (layer 2)" in line for line in bad)
    assert any("stats (layer 0) imports data (layer 1)" in line for line in bad)


# --- Dagster stays in its layer; every folder of code is a package; every import is declared --------------

DAGSTER_ALLOWED = ("defs", "cli", "definitions.py")


def dagster_imports(root: Path, top: str = "workflows") -> list[str]:
    """`file: module` for every import of `dagster` or a `dagster_*` integration outside defs/, cli/ and
    definitions.py (function-level imports included)."""
    found = []
    for path in sorted((root / top).rglob("*.py")):
        if path.relative_to(root / top).parts[0] in DAGSTER_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                first = name.split(".")[0]
                if first == "dagster" or first.startswith("dagster_"):
                    found.append(f"{path.relative_to(root)}: {name}")
    return found


def folders_without_init(root: Path, top: str = "workflows") -> list[str]:
    """Folders under `top` that hold Python files but no `__init__.py` (the layer rules would not see them as
    packages)."""
    return sorted(
        str(folder.relative_to(root))
        for folder in [root / top, *(p for p in (root / top).rglob("*") if p.is_dir())]
        if folder.name != "__pycache__" and any(folder.glob("*.py")) and not (folder / "__init__.py").exists()
    )


def test_dagster_is_imported_only_in_defs_cli_and_definitions():
    bad = dagster_imports(PROJECT_ROOT)
    assert not bad, "domain code imports Dagster (only defs/, cli/ and definitions.py may):\n" + "\n".join(bad)


def test_every_folder_of_code_is_a_package():
    bad = folders_without_init(PROJECT_ROOT)
    assert not bad, "folders of Python files without __init__.py (add one):\n" + "\n".join(bad)


def test_a_dagster_import_in_domain_code_is_caught(tmp_path):
    pkg = tmp_path / "workflows"
    for sub in ("defs", "cli", "ml"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "definitions.py").write_text("import dagster as dg\n")
    (pkg / "defs" / "assets.py").write_text("import dagster as dg\nfrom dagster_celery import celery_executor\n")
    (pkg / "cli" / "commands.py").write_text("def f():\n    import dagster\n")
    (pkg / "ml" / "fit.py").write_text("def f():\n    from dagster import Failure\n")
    (pkg / "ml" / "io.py").write_text("import dagster_duckdb.resource\nimport dagsterish\n")
    bad = dagster_imports(tmp_path)
    assert bad == ["workflows/ml/fit.py: dagster", "workflows/ml/io.py: dagster_duckdb.resource"], bad


def test_a_folder_of_code_without_init_is_caught(tmp_path):
    pkg = tmp_path / "workflows"
    (pkg / "ml").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ml" / "__init__.py").write_text("")
    (pkg / "ml" / "models.py").write_text("")
    (pkg / "attention").mkdir()
    (pkg / "attention" / "metrics.py").write_text("")
    (pkg / "data" / "sources").mkdir(parents=True)
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "sources" / "files.py").write_text("")
    (pkg / "ml" / "__pycache__").mkdir()
    (pkg / "ml" / "__pycache__" / "x.py").write_text("")
    (pkg / "assets").mkdir()  # no Python files: not code
    assert folders_without_init(tmp_path) == ["workflows/attention", "workflows/data/sources"]


def _declared_distributions() -> set[str]:
    import re
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    return {re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}


def undeclared_imports(root: Path, folders: tuple[str, ...], declared: set[str]) -> list[str]:
    """`module (distribution)` for every third-party module imported under `folders` whose distribution is not
    in `declared`."""
    import importlib.metadata
    import sys

    ours = {"workflows", "workflows_tests", "benchmarks"}
    distributions = importlib.metadata.packages_distributions()
    modules = set()
    for folder in folders:
        for path in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    bad = []
    for module in sorted(modules - ours - set(sys.stdlib_module_names)):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not dists & declared:
            bad.append(f"{module} ({', '.join(sorted(dists))})")
    return bad


def test_every_imported_package_is_declared():
    bad = undeclared_imports(PROJECT_ROOT, ("workflows", "benchmarks"), _declared_distributions())
    assert not bad, "imported but not declared in pyproject.toml (add them, then `make lock`):\n" + "\n".join(bad)


def test_an_undeclared_import_is_caught(tmp_path):
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "a.py").write_text(
        "import numpy\nimport json\nfrom tqdm import tqdm\nimport workflows.b\n"
    )
    assert undeclared_imports(tmp_path, ("workflows",), {"numpy"}) == ["tqdm (tqdm)"]
    assert undeclared_imports(tmp_path, ("workflows",), {"numpy", "tqdm"}) == []


def test_benchmarks_import_nothing_from_the_tests():
    bad = [
        str(path.relative_to(PROJECT_ROOT))
        for path in sorted((PROJECT_ROOT / "benchmarks").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "workflows_tests")
        or (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "workflows_tests" for a in node.names))
    ]
    assert not bad, "benchmarks importing from workflows_tests (move what they need into benchmarks/):\n" + "\n".join(
        bad
    )


# --- The environment is read in settings.py only -----------------------------------------------------------

ENVIRONMENT_ALLOWED = ("settings.py", "cli")
ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb"}


def environment_reads(root: Path, top: str = "workflows") -> list[str]:
    """`file:line: what` for every `os.environ` / `os.getenv` (attribute or `from os import`) outside settings.py
    and cli/ (function-level code included)."""
    found = []
    for path in sorted((root / top).rglob("*.py")):
        if path.relative_to(root / top).parts[0] in ENVIRONMENT_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES:
                if isinstance(node.value, ast.Name) and node.value.id == "os":
                    found.append(f"{path.relative_to(root)}:{node.lineno}: os.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "os":
                names = [a.name for a in node.names if a.name in ENVIRONMENT_NAMES]
                if names:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: from os import {', '.join(names)}")
    return found


def test_the_environment_is_read_in_settings_only():
    bad = environment_reads(PROJECT_ROOT)
    assert not bad, (
        "environment read outside settings.py and cli/ (add a function to workflows/settings.py and call it):\n"
        + "\n".join(bad)
    )


def test_an_environment_read_outside_settings_is_caught(tmp_path):
    pkg = tmp_path / "workflows"
    for sub in ("cli", "ml", "data"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "settings.py").write_text("import os\nHOME = os.environ.get('HOME')\n")
    (pkg / "cli" / "commands.py").write_text("import os\nos.environ['X'] = '1'\n")
    (pkg / "ml" / "fit.py").write_text("import os\ndef f():\n    return os.getenv('SLOTS')\n")
    (pkg / "data" / "files.py").write_text("from os import environ, path\nimport os.path\nx = path.join('a')\n")
    (pkg / "data" / "ok.py").write_text("import os\nx = os.cpu_count()\ny = other.environ\n")
    assert environment_reads(tmp_path) == [
        "workflows/data/files.py:1: from os import environ",
        "workflows/ml/fit.py:3: os.getenv",
    ]
