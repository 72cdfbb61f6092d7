"""Bounded history on disk: keep the newest few versions of each file family per symbol.

Checkpoints (`checkpoints/<symbol>/<kind>-<data version>-<recipe>.pt`) and attention tensors
(`attention/<symbol>/<model>-<checkpoint hash>.npz`) get a new name whenever their inputs
change, so without pruning they grow with every retrain. A family is the name up to its
first `-` (the model kind). Files a caller protects (what the latest materialisation points
to, the checkpoint that serves forecasts) are never deleted; they count towards `keep`.
"""

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

DEFAULT_KEEP = 3


def family(path: Path) -> str:
    return path.name.split("-", 1)[0]


def prune_versions(
    folder: Path, suffix: str, keep: int = DEFAULT_KEEP, protect: Iterable[str | os.PathLike] = ()
) -> list[Path]:
    """Delete all but the `keep` newest `*suffix` files of each family in `folder`; return what was deleted."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the file the latest materialisation points to), not {keep}")
    if not folder.is_dir():
        return []
    protected = {Path(p).resolve() for p in protect}
    families: dict[str, list[Path]] = defaultdict(list)
    for path in folder.iterdir():
        if path.is_file() and path.name.endswith(suffix) and not path.name.startswith("."):
            families[family(path)].append(path)
    deleted = []
    for paths in families.values():
        paths.sort(key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
        unprotected = [p for p in paths if p.resolve() not in protected]
        room = max(keep - (len(paths) - len(unprotected)), 0)
        for path in unprotected[room:]:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".timings.json").unlink(missing_ok=True)  # a checkpoint's clock readings
            deleted.append(path)
    return deleted
