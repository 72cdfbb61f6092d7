"""The ensemble's member 0 is the attention LSTM's training: trained once and shared (issue 28, item 2)."""

from contextlib import nullcontext
from dataclasses import replace

import duckdb
import pytest
import torch

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.ml.period_models import train_period_model
from workflows.ml.periods import ForecastPeriod, PeriodConfig
from workflows.ml.profiles import recipe_for

CFG = PeriodConfig(train_days=40, min_train_days=30, val_days=7)
NOV, DEC = ForecastPeriod.from_key("2025-11-01"), ForecastPeriod.from_key("2025-12-01")


@pytest.fixture(scope="module")
def feats():
    return compute_features(generate_candles(SyntheticSpec(days=110, seed=3)))  # 2025-09-13 .. 2025-12-31


def _recipes(members: int = 3):
    single = recipe_for("attention_lstm", "ci")
    ens = recipe_for("ensemble", "ci")
    one_epoch = {"attention_lstm": single, "ensemble": replace(ens, members=members)}
    return {k: replace(r, train=replace(r.train, epochs=1)) for k, r in one_epoch.items()}


def _period(con, feats, period, folder, recipes, share: bool, trained: list, codes=None):
    def counted(member, _report):
        trained.append((period.key, member))

    out = {}
    for kind, recipe in recipes.items():
        out[kind] = train_period_model(
            lambda: nullcontext(con),
            feats,
            "BTC",
            kind,
            recipe,
            period,
            CFG,
            folder,
            (codes or {}).get(kind, "1"),
            "ci",
            callback=counted if kind == "ensemble" else None,
            first_member_kind="attention_lstm" if share and kind == "ensemble" else None,
        )
    return out


def _states(model) -> list[dict]:
    return [m.state_dict() for m in model.members]


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_ensembles_first_member_is_the_attention_lstm_trained_once(feats, tmp_path, one_thread):
    shared_con, own_con = duckdb.connect(), duckdb.connect()
    recipes = _recipes()
    shared_epochs: list = []
    own_epochs: list = []
    for period in (NOV, DEC):  # the second period warm-starts both from the first
        shared = _period(shared_con, feats, period, tmp_path / "shared", recipes, True, shared_epochs)
        own = _period(own_con, feats, period, tmp_path / "own", recipes, False, own_epochs)
        s_ens, o_ens = shared["ensemble"].load().model, own["ensemble"].load().model
        single = shared["attention_lstm"].load().model
        # member 0 is the attention LSTM's weights, and they are what training member 0 gives, bit for bit
        assert _equal(_states(s_ens)[0], single.state_dict())
        for a, b in zip(_states(s_ens), _states(o_ens), strict=True):
            assert _equal(a, b)
    # shared: members 1 and 2 trained in each period; not shared: members 0, 1 and 2
    assert {m for _, m in shared_epochs} == {1, 2}
    assert {m for _, m in own_epochs} == {0, 1, 2}


def test_a_first_member_trained_otherwise_is_not_shared(feats, tmp_path, one_thread):
    con = duckdb.connect()
    recipes = _recipes()
    other = replace(recipes["attention_lstm"], train=replace(recipes["attention_lstm"].train, seed=7))
    trained: list = []
    _period(con, feats, NOV, tmp_path, {"attention_lstm": other, "ensemble": recipes["ensemble"]}, True, trained)
    assert {m for _, m in trained} == {0, 1, 2}  # another seed: member 0 is trained, not taken
    trained.clear()
    _period(duckdb.connect(), feats, NOV, tmp_path / "code", recipes, True, trained, codes={"ensemble": "2"})
    assert {m for _, m in trained} == {0, 1, 2}  # another model code version: not the same training
