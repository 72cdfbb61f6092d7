"""One model per symbol, forecast period and kind: trained once, warm-started, registered in DuckDB.

A period model is identified by its training key: the model kind, the recipe's
fingerprint, the model code version, the content hash of the training slice
(`periods.training_slice_version`) and the checkpoint it was warm-started from.
`train_period_model` trains only when no registered checkpoint has that key (and
its file still matches its sha256); otherwise it returns the registered one and
trains nothing. So a new day inside a period, or a rerun, costs no training; a
code-version bump, another recipe, a corrected candle before the period or a
retrained predecessor each give a new key and one training.

The `period_models` table is the registry later steps read (warm start, forecasts,
serving): the checkpoint an upstream run produced, never the newest file on disk.
"""

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl
import torch

from workflows.data.warehouse import replace_rows, table_exists
from workflows.io import sha256_file
from workflows.ml.checkpoints import Checkpoint, load_checkpoint
from workflows.ml.model_ref import ModelRef
from workflows.ml.models import ArchConfig
from workflows.ml.periods import ForecastPeriod, PeriodConfig, period_windows, training_bounds, training_slice_version
from workflows.ml.pipeline import fit, warm_start_compatible
from workflows.ml.profiles import Profile, Recipe
from workflows.ml.training import EpochReport
from workflows.ml.windows import WindowData
from workflows.records import from_record, to_record


@dataclass(frozen=True)
class PeriodModel:
    """A period model as the registry holds it."""

    symbol: str
    period: str
    kind: str
    train_key: str
    path: str
    sha256: str
    warm_from: str | None  # sha256 of the previous period's checkpoint it started from; None: from scratch
    data_version: str  # the training slice's content hash
    code_version: str
    profile: Profile | None
    trained: bool = True  # False: an existing checkpoint with the same key was returned

    def ref(self, cfg: PeriodConfig) -> ModelRef:
        """What a Dagster asset returns for it (and downstream assets load by), with the period settings it was
        trained with."""
        return ModelRef(self.path, self.sha256, self.kind, self.profile, self.period, cfg, self.train_key)

    def load(self) -> Checkpoint:
        return load_checkpoint(self.path, self.sha256)

    def metadata(self) -> dict[str, str | int | bool]:
        """What the UI shows of it: trained or reused, its warm start, training slice, last training and target
        hours, epochs, profile and checkpoint hash."""
        training = self.load().training
        return {
            "trained": self.trained,
            "warm_started_from": self.warm_from or "scratch",
            "training_slice": self.data_version,
            "train_end_ts": training.train_end_ts or "",
            "last_target_ts": training.last_target_ts or "",
            "epochs_run": training.epochs_run,
            "profile": self.profile or "?",
            "sha256": self.sha256,
        }


def data_root(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The folder of the warehouse file `con` is open on (None: an in-memory database)."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return Path(row[0]).resolve().parent if row and row[0] else None


def stored_path(con: duckdb.DuckDBPyConnection, path: str | os.PathLike) -> str:
    """How the registry stores a checkpoint's path: relative to the data folder (the warehouse's folder) when
    the file lies under it, so a copied data folder reads its own checkpoints and a moved one retrains nothing."""
    root, target = data_root(con), Path(path).resolve()
    return target.relative_to(root).as_posix() if root is not None and target.is_relative_to(root) else str(target)


def resolved_path(con: duckdb.DuckDBPyConnection, stored: str) -> str:
    """The absolute path of a registry entry (an absolute one, written before paths were relative, as it is)."""
    root = data_root(con)
    return stored if Path(stored).is_absolute() or root is None else str(root / stored)


def train_key(kind: str, recipe: Recipe, code_version: str, data_version: str, warm_sha: str | None) -> str:
    text = json.dumps([kind, recipe.fingerprint(), code_version, data_version, warm_sha], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def registered(con: duckdb.DuckDBPyConnection, symbol: str, period: str, kind: str) -> PeriodModel | None:
    if not table_exists(con, "period_models"):
        return None
    rows = con.execute(
        "SELECT train_key, path, sha256, warm_from, data_version, code_version, profile FROM period_models "
        "WHERE symbol = ? AND period = ? AND kind = ?",
        [symbol, period, kind],
    ).fetchall()
    if not rows:
        return None
    key, path, sha, warm, data, code, profile = rows[0]
    return PeriodModel(symbol, period, kind, key, resolved_path(con, path), sha, warm, data, code, profile, False)


def registered_config(con: duckdb.DuckDBPyConnection, symbol: str, period: str, kind: str) -> PeriodConfig | None:
    """The period settings a registered model was trained with."""
    if not table_exists(con, "period_models"):
        return None
    rows = con.execute(
        "SELECT period_config FROM period_models WHERE symbol = ? AND period = ? AND kind = ?", [symbol, period, kind]
    ).fetchall()
    return from_record(json.loads(rows[0][0]), PeriodConfig, "period_config") if rows and rows[0][0] else None


def registered_models(con: duckdb.DuckDBPyConnection, symbol: str) -> pl.DataFrame:
    """Every registered period model of a symbol, oldest period first."""
    if not table_exists(con, "period_models"):
        return pl.DataFrame()
    rows = con.execute("SELECT * FROM period_models WHERE symbol = ? ORDER BY period, kind", [symbol]).pl()
    return rows.with_columns(pl.Series("path", [resolved_path(con, p) for p in rows["path"]], dtype=pl.String))


def register(con: duckdb.DuckDBPyConnection, model: PeriodModel, extra: dict) -> None:
    row = {k: v for k, v in model.__dict__.items() if k != "trained"} | extra
    row["path"] = stored_path(con, model.path)
    row["trained_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
    replace_rows(
        con,
        "period_models",
        "symbol = ? AND period = ? AND kind = ?",
        [model.symbol, model.period, model.kind],
        pl.DataFrame([row]),
    )


def _still_there(model: PeriodModel) -> bool:
    path = Path(model.path)
    return path.is_file() and sha256_file(path) == model.sha256


def train_period_model(
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    features: pl.DataFrame,
    symbol: str,
    kind: str,
    recipe: Recipe,
    period: ForecastPeriod,
    cfg: PeriodConfig,
    folder: str | os.PathLike,
    code_version: str,
    profile: Profile | None = None,
    callback: Callable[[int, EpochReport], None] | None = None,
    log: Callable[[str], None] | None = None,
    first_member_kind: str | None = None,
) -> PeriodModel:
    """The model of `kind` for `period`: the registered one when its training key is current, else trained
    (warm-started from the previous period's registered model of the same kind when there is one and its
    architecture matches) and registered. Registering happens after the checkpoint is written, in one
    transaction, so a crash leaves the previous registration. `connect` opens the warehouse: it is held
    only to read and write the registry, never while training.

    `first_member_kind`: for an ensemble, the single-model kind whose recipe is its member 0's
    (`ModelKind.first_member`); when that kind's model of this period was trained exactly as member 0 would be
    (`shared_first_member`), it is member 0 and one training fewer runs."""
    say = log or (lambda _msg: None)
    spec = recipe.window_spec
    data_version = training_slice_version(features, spec, period, cfg)
    with connect() as con:
        previous = registered(con, symbol, period.previous().key, kind)
        current = registered(con, symbol, period.key, kind)
    warm: Checkpoint | None = None
    if previous is not None and _still_there(previous):
        warm = previous.load()
        archs = [ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads))] * max(
            1, recipe.members
        )
        if not warm_start_compatible(warm, archs):
            say(f"{kind} {period}: the {period.previous()} model has another architecture; training from scratch")
            warm = None
    key = train_key(kind, recipe, code_version, data_version, warm.sha256 if warm else None)
    if current is not None and current.train_key == key and _still_there(current):
        say(f"{kind} {period}: registered model {Path(current.path).name} is current; nothing to train")
        return current
    data = period_windows(features, spec, period, cfg, data_version)
    shared = None
    if first_member_kind and recipe.members > 1:
        with connect() as con:
            shared = shared_first_member(con, symbol, period, first_member_kind, recipe, data, cfg, warm, code_version)
        if shared is not None:
            say(f"{kind} {period}: member 0 is the {first_member_kind} model {shared.path.name} (same training)")
    say(
        f"{kind} {period}: training on {len(data.train):,} windows ({len(data.val):,} validation), "
        + (f"warm-started from {Path(warm.path).name}" if warm else "from scratch")
    )
    result = fit(
        recipe,
        data,
        Path(folder),
        f"{kind}-{period.key}",
        callback=callback,
        warm=warm,
        warm_epochs=cfg.warm_epochs,
        warm_patience=cfg.warm_patience,
        first_member=shared,
    )
    model = PeriodModel(
        symbol,
        period.key,
        kind,
        key,
        str(result.checkpoint),
        result.sha256,
        warm.sha256 if warm else None,
        data_version,
        code_version,
        profile,
    )
    b = training_bounds(period, spec, cfg)
    naive = [datetime.fromtimestamp(h * 3600, tz=timezone.utc).replace(tzinfo=None) for h in (b.train_lo, b.train_hi)]
    with connect() as con:
        register(
            con,
            model,
            {
                "train_lo": naive[0],
                "train_hi": naive[1],
                "val_hi": datetime.fromtimestamp(b.val_hi * 3600, tz=timezone.utc).replace(tzinfo=None),
                "epochs_run": result.metrics.epochs_run,
                "period_config": json.dumps(to_record(cfg), sort_keys=True),
                "wall_s": result.metrics.wall_s,
            },
        )
    return replace(model, trained=True)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def shared_first_member(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    period: ForecastPeriod,
    source_kind: str,
    recipe: Recipe,
    data: WindowData,
    cfg: PeriodConfig,
    warm: Checkpoint | None,
    code_version: str,
) -> Checkpoint | None:
    """The `source_kind` model registered for `period` when training it was exactly the training of the
    ensemble `recipe`'s member 0 (so its weights are what that training would give, bit for bit): the same
    architecture, training config with member 0's seed, training windows and scaler, period settings, and a
    warm start from the same weights (`warm` is the ensemble's previous model; its member 0 must equal the
    weights `source_kind` started from) or from scratch for both, by the same model code version. None
    otherwise: member 0 is trained."""
    source = registered(con, symbol, period.key, source_kind)
    if source is None or source.code_version != code_version or not _still_there(source):
        return None
    if registered_config(con, symbol, period.key, source_kind) != cfg:
        return None
    ckpt = source.load()
    member0 = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads))
    same = (
        not isinstance(ckpt.arch, list)
        and json.dumps(ckpt.arch.to_dict(), sort_keys=True) == json.dumps(member0.to_dict(), sort_keys=True)
        and json.dumps(ckpt.train_config, sort_keys=True, default=str)
        == json.dumps(recipe.train.to_dict(), sort_keys=True, default=str)
        and ckpt.data_version == data.data_version
        and ckpt.window_spec == data.spec_dict()
        and ckpt.scaler.to_dict() == data.scaler.to_dict()
    )
    if not same:
        return None
    if warm is None or source.warm_from is None:
        return ckpt if warm is None and source.warm_from is None else None
    before = registered(con, symbol, period.previous().key, source_kind)
    if before is None or before.sha256 != source.warm_from or not _still_there(before):
        return None
    members = getattr(warm.model, "members", None)
    return ckpt if members is not None and _same_weights(before.load().model, members[0]) else None
