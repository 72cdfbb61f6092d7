"""Typed results as plain JSON, read back by their type hints: stored outputs that survive a refactor.

A pickle names a result's module and class, so moving `Evaluation` to another module breaks
every output stored before the move. Here a dataclass is stored as its fields, recursively
(nested dataclasses, dicts, lists, tuples, numpy arrays and scalars, datetimes as ISO 8601, None), and rebuilt from the
type hints of the class the reader asks for: a field added later with a default reads old
records; a renamed module changes nothing.
"""

import dataclasses
import types
import typing
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

_ARRAY = "__ndarray__"


class RecordError(TypeError):
    """A value that has no faithful JSON form, or a record that does not fit the asked-for type."""


def to_record(value: Any, where: str = "value") -> Any:
    """JSON-ready form of `value` (json.dumps it with allow_nan=True)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_record(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "mM":  # datetime64 / timedelta64: their integer ticks
            data = value.view(np.int64).ravel().tolist()
        elif value.dtype.kind in "biuf":
            data = value.ravel().tolist()
        else:
            raise RecordError(f"{where}: numpy arrays of dtype {value.dtype} have no JSON record form")
        return {_ARRAY: value.dtype.str, "shape": list(value.shape), "data": data}
    if isinstance(value, dict):
        bad = [k for k in value if isinstance(k, bool) or not isinstance(k, str | int)]
        if bad:
            raise RecordError(f"{where}: dict keys must be strings or integers, found {bad[0]!r}")
        return {str(k): to_record(v, f"{where}[{k!r}]") for k, v in value.items()}  # int keys: by the type hint
    if isinstance(value, list | tuple):
        return [to_record(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):  # ISO 8601, its offset kept (a naive one stays naive)
        return value.isoformat()
    raise RecordError(f"{where}: {type(value).__name__} has no JSON record form")


def _array(data: dict) -> np.ndarray:
    dtype = np.dtype(data[_ARRAY])
    shape = tuple(data["shape"])
    if dtype.kind in "mM":
        return np.asarray(data["data"], dtype=np.int64).view(dtype).reshape(shape)
    return np.asarray(data["data"], dtype=dtype).reshape(shape)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_record(data: Any, tp: Any, where: str = "value") -> Any:
    """Rebuild a value of type `tp` from `to_record`'s form."""
    if tp is Any or tp is None or tp is object:
        return _array(data) if isinstance(data, dict) and _ARRAY in data else data
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            if type(None) in args:
                return None
            raise RecordError(f"{where}: None where {tp} is required")
        options = [a for a in args if a is not type(None)]
        if isinstance(data, dict) and _ARRAY in data:
            return _array(data)
        for option in options:  # the first member the record fits
            try:
                return from_record(data, option, where)
            except (RecordError, TypeError, ValueError, KeyError):
                continue
        raise RecordError(f"{where}: {str(data)[:80]} fits none of {tp}")
    if data is None:
        raise RecordError(f"{where}: None where {tp} is required")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(data, dict):
            raise RecordError(f"{where}: {tp.__name__} needs an object, got {type(data).__name__}")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = from_record(data[f.name], hints.get(f.name, Any), f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where}: {tp.__name__}.{f.name} is missing from the record")
        return tp(**kwargs)
    if tp is np.ndarray or origin is np.ndarray:
        if not (isinstance(data, dict) and _ARRAY in data):
            raise RecordError(f"{where}: an array record is required")
        return _array(data)
    if origin in (dict, typing.Dict) or tp is dict:  # noqa: UP006
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        if not isinstance(data, dict):
            raise RecordError(f"{where}: an object is required for {tp}")
        keys = {k: int(k) if key_type is int else k for k in data}
        return {keys[k]: from_record(v, value_type, f"{where}[{k!r}]") for k, v in data.items()}
    if origin in (list, typing.List) or tp is list:  # noqa: UP006
        item = args[0] if args else Any
        return [from_record(v, item, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin in (tuple, typing.Tuple) or tp is tuple:  # noqa: UP006
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_record(v, args[0], f"{where}[{i}]") for i, v in enumerate(data))
        if args and len(args) != len(data):
            raise RecordError(f"{where}: {len(data)} items where {tp} has {len(args)}")
        return tuple(from_record(v, args[i] if args else Any, f"{where}[{i}]") for i, v in enumerate(data))
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise RecordError(f"{where}: a number is required, got {data!r}")
        return float(data)
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise RecordError(f"{where}: an integer is required, got {data!r}")
        return data
    if tp in (str, bool):
        if not isinstance(data, tp):
            raise RecordError(f"{where}: {tp.__name__} required, got {data!r}")
        return data
    if tp is Path:
        return Path(data)
    if tp is datetime:
        if not isinstance(data, str):
            raise RecordError(f"{where}: an ISO 8601 time is required, got {data!r}")
        try:
            return datetime.fromisoformat(data)
        except ValueError as exc:
            raise RecordError(f"{where}: {data!r} is not an ISO 8601 time") from exc
    return data


DATA_ROOT_TOKEN = "${data}/"  # a stored path under the data folder, written relative to it


def paths_relative(value: Any, root: Path) -> Any:
    """`value` (a JSON-ready record) with every string that is a path under `root` written as
    `${data}/<path relative to root>`: a copied or moved data folder reads its own files."""
    prefix = str(root).rstrip("/") + "/"
    if isinstance(value, str):
        return DATA_ROOT_TOKEN + value[len(prefix) :] if value.startswith(prefix) else value
    if isinstance(value, dict):
        return {k: paths_relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [paths_relative(v, root) for v in value]
    return value


def paths_resolved(value: Any, root: Path) -> Any:
    """The inverse of `paths_relative`, against the data folder the record is read from."""
    if isinstance(value, str):
        return str(root / value[len(DATA_ROOT_TOKEN) :]) if value.startswith(DATA_ROOT_TOKEN) else value
    if isinstance(value, dict):
        return {k: paths_resolved(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [paths_resolved(v, root) for v in value]
    return value
