"""Publishing files atomically: a reader sees the old file or the new one, never half of one.

Every file the pipeline publishes (checkpoints, training resume state, attention tensors,
reports, figures, JSON, the promotion pointer, quarantine reasons) goes through `publishing`:
written to a temporary file in the same folder, fsynced, renamed over the target with
`os.replace`, and the folder fsynced so the rename itself survives a crash.
"""

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def publishing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; on success publish it as `path`.

    The temporary name keeps the target's suffix, so writers that pick a format from it
    (`np.savez_compressed`, `Figure.savefig`) write the right format. If the block raises,
    the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def write_with(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Publish what `writer(tmp_path)` writes (e.g. `lambda p: torch.save(obj, p)`) as `path`."""
    with publishing(path) as tmp:
        writer(tmp)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary file beside `path`, fsync it, rename it over `path`, fsync the folder."""
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike, value, **dumps_options) -> Path:
    options = {"indent": 1, "default": float, **dumps_options}
    return write_text_atomic(path, json.dumps(value, **options))


def move_atomic(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rename `source` to `target` (same file system) and fsync both folders."""
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    _fsync_folder(target.parent)
    if source.parent != target.parent:
        _fsync_folder(source.parent)
    return target


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class StoredFileError(ValueError):
    """A stored file that cannot be read (truncated, edited, another format): the message names the file,
    what is wrong with it and what to do."""

    def __init__(self, path: str | os.PathLike, what: str, problem: str, remedy: str):
        self.path = Path(path)
        super().__init__(f"{path}: {what} cannot be read ({problem}); {remedy}")


@contextmanager
def reading_stored(path: str | os.PathLike, what: str, remedy: str) -> Iterator[None]:
    """Turn whatever parsing `path` raises inside the block into a `StoredFileError` naming the file, `what` it
    is and the `remedy` (a missing file stays `FileNotFoundError`: its callers say what to do about that)."""
    try:
        yield
    except (StoredFileError, FileNotFoundError):
        raise
    except Exception as exc:  # zipfile.BadZipFile, EOFError, JSONDecodeError, KeyError, RuntimeError, ...
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise StoredFileError(path, what, f"{type(exc).__name__}: {detail}", remedy) from exc


def read_json_object(path: str | os.PathLike, what: str, remedy: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stored JSON object holding `keys`, or `StoredFileError` naming the file, what is wrong and the remedy."""
    with reading_stored(path, what, remedy):
        value = json.loads(Path(path).read_text())
    if not isinstance(value, dict):
        raise StoredFileError(path, what, f"a JSON {type(value).__name__}, not an object", remedy)
    missing = [k for k in keys if k not in value]
    if missing:
        raise StoredFileError(path, what, f"it lacks {', '.join(missing)}", remedy)
    return value
