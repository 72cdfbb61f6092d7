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
