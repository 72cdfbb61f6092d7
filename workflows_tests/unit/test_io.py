"""The one atomic-write helper: a reader sees the old file or the new one, never a half."""

import ast
import hashlib
import json
import warnings

import numpy as np
import pytest

from workflows.io import move_atomic, publishing, sha256_file, write_json_atomic, write_with
from workflows_tests.helpers import PROJECT_ROOT


def test_publish_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "value.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["value.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    target = folder / "report.md"
    target.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_with(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in folder.iterdir()] == ["report.md"]


def test_temporary_keeps_the_suffix_writers_choose_a_format_from(tmp_path):
    target = tmp_path / "attention.npz"
    with publishing(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".npz"
        np.savez_compressed(tmp, x=np.arange(3))
    with np.load(target) as data:
        assert data["x"].tolist() == [0, 1, 2]


def test_move_and_digest(tmp_path):
    source = tmp_path / "incoming" / "a.csv"
    source.parent.mkdir()
    source.write_bytes(b"x" * 3_000_000)
    moved = move_atomic(source, tmp_path / "processed" / "a.csv")
    assert not source.exists() and moved.read_bytes() == b"x" * 3_000_000
    assert sha256_file(moved) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert sha256_file(moved) != hashlib.sha256(b"x" * 2_999_999).hexdigest()


PUBLISHING_CALLS = {"replace", "rename", "savefig", "save", "savez", "savez_compressed", "write_text", "write_bytes"}


def test_package_publishes_files_only_through_workflows_io():
    """No module of the package renames or writes a published file by hand."""
    offenders = []
    for path in sorted((PROJECT_ROOT / "workflows").rglob("*.py")):
        if path.name == "io.py" and path.parent.name == "workflows":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name, owner = node.func.attr, node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else ""
            if name in PUBLISHING_CALLS and not (name == "replace" and owner_name not in {"os", "shutil"}):
                # Allowed: writing to `tmp`, the temporary path a `write_with` writer is handed, or to
                # `buffer`, an in-memory io.BytesIO.
                if {"tmp", "buffer"} & {owner_name, *(a.id for a in node.args if isinstance(a, ast.Name))}:
                    continue
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} .{name}(")
    assert not offenders, "publish through workflows.io (write_with / write_*_atomic): " + ", ".join(offenders)


def test_deprecations_from_project_code_fail_and_third_party_ones_do_not():
    with pytest.raises(DeprecationWarning, match="old API"):
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    with pytest.warns(DeprecationWarning, match="their old API"):
        warnings.warn_explicit("their old API", DeprecationWarning, "lib.py", 1, module="somelib")
