"""Property tests: whatever a user writes, a config either validates or fails with a
ConfigError; whatever the numbers do, training yields data (diverged, non-converged),
never NaN in the statistics and never a RuntimeWarning.

The pytest configuration turns RuntimeWarning into an error, so "no warning" is checked by
every test here simply by running.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nnrun import api
from nnrun.config import SCHEMA_PATHS, Config, ConfigError, cells, load, n_runs
from conftest import TINY
from nnrun.datasets import load as load_dataset
from nnrun.engine import TrainSpec, init_params, train
from nnrun.variants import LOSSES, VARIANTS, sigmoid, softmax

BASE = {**TINY, "name": "prop"}
# NNRUN_PROP_EXAMPLES raises the count for a deeper local search; CI keeps it quick.
SETTINGS = settings(max_examples=int(os.environ.get("NNRUN_PROP_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- strategies

# Words a config might hold, right or wrong: real names, near misses and path tricks.
WORDS = [
    "xor", "parity", "csv", "moons", "ce", "mse", "ce-softmax", "mse-linear", "sigmoid", "tanh", "relu", "softmax",
    "linear", "sgd", "adam", "momentum", "float32", "float64", "float16", "full", "legacy", "uniform", "file",
    "exact", "a_minus_y", "auto", "binary", "max_error", "accuracy", "loss", "sigmod", "mse2", "../x", "a/b", "",
    " ", "~nobody/x", "name", "nan", "1e-3", "[1, 2", "{a: 1}",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, -1, 5, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.1, 1.0, 1.5, -0.1, 1e308, float("nan"), float("inf")]),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(WORDS + ["path", "target", "scheme", "scale"]), st.text(max_size=5)), inner, max_size=3),
    ),
    max_leaves=8,
)
JUNK_KEYS = ["epochs", "learning_rate", "model.hiden", "training.optimiser", "sweep", "seed", "dataset.n_samples", "model.init.path", "x.y.z", "", "model..hidden", "variants.0"]
keys = st.sampled_from(sorted(SCHEMA_PATHS) + JUNK_KEYS)
axis_keys = st.sampled_from(sorted(SCHEMA_PATHS) + ["model.widht", "seeds", "learning_rates", "name", "model.hidden.0"])


def put(data: dict, key: str, value) -> None:
    """Set a dotted key, replacing whatever stands in the way (a scalar becomes a mapping)."""
    *parents, last = key.split(".")
    node = data
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[last] = value


@st.composite
def config_dicts(draw) -> dict:
    """A valid tiny config with a few random keys set to random values, or pure noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.dictionaries(st.one_of(keys, st.text(max_size=6)), values, max_size=5))
    data = copy.deepcopy(BASE)
    for key, value in draw(st.lists(st.tuples(keys, values), max_size=4)):
        put(data, key, value)
    if draw(st.booleans()):
        sweep = draw(st.dictionaries(axis_keys, st.one_of(st.lists(values, max_size=3), values), max_size=2))
        data["sweep"] = sweep
    return data


def _valid_or_config_error(call) -> Config | None:
    try:
        config = call()
    except ConfigError as exc:
        assert str(exc).strip(), "a ConfigError must say something"
        assert "Traceback" not in str(exc)
        return None
    assert isinstance(config, Config)
    return config


# ----------------------------------------------------------------------------- configs


@SETTINGS
@given(config_dicts())
def test_random_config_dicts_validate_or_raise_config_error(data: dict) -> None:
    config = _valid_or_config_error(lambda: load(data))
    if config is None:
        return
    # What validates can be used: expanded, counted, hashed, dumped and read back unchanged.
    assert len(cells(config)) >= 1
    assert n_runs(config) >= 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(config.dump_yaml(), encoding="utf-8")
        again = load(path)
    assert again.sha256() == config.sha256()


set_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["[8, 8]", "[8,", "!!int x", "!!float y", "!!timestamp z", "!!bool maybe", "!!python/name:os.system", "{a: 1", "*x", "&a 1", ".nan", "-.inf", "1e400", "~", "'", "\"", "\t", "|", "? x", "- a\n- b", "x: y: z"]),
    values.map(str),
)


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=20), st.builds(lambda k, v: f"{k}={v}", keys, set_values)), min_size=1, max_size=3))
def test_random_set_options_validate_or_raise_config_error(sets: list[str]) -> None:
    _valid_or_config_error(lambda: load(BASE, sets))


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=20), st.builds(lambda k, v: f"{k}={v}", axis_keys, set_values)), min_size=1, max_size=2))
def test_random_grid_options_validate_or_raise_config_error(grid: list[str]) -> None:
    _valid_or_config_error(lambda: load(BASE, (), grid))


yaml_texts = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(["name", "dataset", "model", "training", "seeds", "variants", "learning_rates", "sweep", "  hidden", "  epochs", "- x"]), set_values),
        max_size=5,
    ).map("\n".join),
)


@SETTINGS
@given(yaml_texts)
def test_random_yaml_files_validate_or_raise_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.yaml"
        if _encodable(text):
            path.write_text(text, encoding="utf-8")
        else:  # a lone surrogate: the file holds bytes that are not UTF-8
            path.write_bytes(b"name: \xff\n")
        _valid_or_config_error(lambda: load(path))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_unsafe_tags_construct_nothing(tmp_path: Path, monkeypatch) -> None:
    """Every object-building tag is refused before anything runs."""
    monkeypatch.chdir(tmp_path)
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system", "!!python/name:os.system", "!!python/module:os"):
        path = tmp_path / "evil.yaml"
        path.write_text(f'name: {tag} ["touch pwned"]\n')
        with pytest.raises(ConfigError, match=r"evil\.yaml: line 1, column 7: not valid YAML: the tag .* is not allowed"):
            load(path)
        with pytest.raises(ConfigError, match="not allowed"):
            load(BASE, [f'name={tag} ["touch pwned"]'])
    assert not (tmp_path / "pwned").exists()


# ----------------------------------------------------------------------------- numerics

EXTREMES = [1e308, -1e308, 1e300, -1e300, 1e10, -1e10, 710.0, -710.0, 40.0, -40.0, 0.0, 1e-300, -1e-300]


@st.composite
def variant_inputs(draw, limit: float = 1e308):
    """(variant, z, y) with z (samples, units, runs) drawn from extremes and ordinary values."""
    name = draw(st.sampled_from(sorted(VARIANTS)))
    v = VARIANTS[name]
    n, r = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    k = draw(st.integers(2, 4)) if v.output == "softmax" else draw(st.sampled_from([1, 1, 3]))
    # Single-unit outputs take the full float range; summed over several units, a loss of
    # k·1e308 is past what a float holds, so wider layers stay within ±1e300.
    cap = limit if k == 1 else min(limit, 1e300)
    elems = st.one_of(st.sampled_from([x for x in EXTREMES if abs(x) <= cap]), st.floats(-50, 50))
    z = np.array(draw(st.lists(elems, min_size=n * k * r, max_size=n * k * r)), dtype=float).reshape(n, k, r)
    labels = draw(st.lists(st.integers(0, k - 1 if k > 1 else 1), min_size=n, max_size=n))
    if v.output == "softmax" or k > 1:
        y = np.eye(k)[labels][..., None]
    else:
        y = np.array(labels, dtype=float)[:, None, None]
    return v, z, y


@SETTINGS
@given(variant_inputs())
def test_outputs_losses_and_deltas_are_finite_for_any_z(case) -> None:
    """Under the engine's np.errstate, every output, loss and delta is finite at any z."""
    v, z, y = case
    with np.errstate(all="ignore"):  # exactly what engine.train does
        a = v.output_fn(z)
        losses = {loss: LOSSES[(v.output, loss)](z, a, y) for loss in ("ce", "mse") if (v.output, loss) in LOSSES}
        delta = v.delta_fn(z, a, y)
    if v.output != "linear":
        assert np.all((a >= 0) & (a <= 1)), a
        assert np.all(np.isfinite(delta)) and np.all(np.abs(delta) <= 2), delta
        for loss, value in losses.items():
            assert value.shape == (z.shape[0], z.shape[2])
            assert np.all(np.isfinite(value)) and np.all(value >= 0), (loss, z, value)
    else:
        assert not np.any(np.isnan(losses["mse"])) and np.all(losses["mse"] >= 0)
        assert not np.any(np.isnan(delta))
    if v.output == "softmax":
        assert np.allclose(a.sum(axis=1), 1.0)


@SETTINGS
@given(variant_inputs(limit=1e300))
def test_stable_pieces_raise_no_floating_point_warning(case) -> None:
    """softmax, the losses and the deltas are written stably: no overflow even outside errstate.

    Only the seed-exact sigmoid 1/(1 + e^−z) overflows in exp (harmlessly, to 0); the engine
    runs it under np.errstate, so it is evaluated that way here too.
    """
    v, z, y = case
    with np.errstate(all="ignore"):
        a = sigmoid(z) if v.output == "sigmoid" else v.output_fn(z) if v.output == "linear" else None
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        if v.output == "softmax":
            a = softmax(z)
        if v.output != "linear":
            for loss in ("ce", "mse"):
                assert np.all(np.isfinite(LOSSES[(v.output, loss)](z, a, y)))
            assert np.all(np.isfinite(v.delta_fn(z, a, y)))


# ----------------------------------------------------------------------------- training

XOR = load_dataset("xor", bias_column=True)
HUGE_LRS = [1e-3, 1.0, 1e3, 1e6, 1e12, 1e100, 1e300, 1.7e308]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(VARIANTS)),
    activation=st.sampled_from(["sigmoid", "tanh", "relu"]),
    optimizer=st.sampled_from([("sgd", ()), ("momentum", (("beta", 0.9),)), ("adam", (("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)))]),
    dtype=st.sampled_from(["float64", "float32"]),
    lrs=st.lists(st.sampled_from(HUGE_LRS), min_size=1, max_size=4),
    scale=st.sampled_from([1.0, 10.0, 1e3, 1e30]),
    batch=st.sampled_from([None, 1, 3]),
    bias=st.booleans(),
)
# float32 logits overflow to ±inf while sigmoid(±inf) is a finite 0 or 1: a run that is
# not marked diverged must still have a finite cross-entropy.
@example(name="ce", activation="relu", optimizer=("sgd", ()), dtype="float32", lrs=[1e-3], scale=1e30, batch=None, bias=False)
@example(name="mse", activation="sigmoid", optimizer=("sgd", ()), dtype="float64", lrs=[1e300, 1.7e308], scale=1.0, batch=None, bias=False)
# Finite logits near the float64 limit: softmax cross-entropy is 0 · ∞ = NaN there, which
# only a linear output (whose ce is NaN by design) may have without being marked diverged.
@example(name="mse-softmax", activation="sigmoid", optimizer=("momentum", (("beta", 0.9),)), dtype="float64", lrs=[0.001, 1.7e308], scale=1.0, batch=1, bias=False)
def test_engine_turns_any_learning_rate_into_data(name, activation, optimizer, dtype, lrs, scale, batch, bias) -> None:
    """Huge learning rates and saturated inits give diverged or non-converged runs, with
    consistent flags and finite final metrics wherever a run did not diverge."""
    v = VARIANTS[name]
    Y = XOR.targets(v.output)
    sizes = [XOR.X.shape[1], 2, Y.shape[1]]
    seeds = np.arange(len(lrs))
    Ws, bs = init_params("uniform", sizes, seeds, scale=scale, bias=bias, dtype=dtype)
    spec = TrainSpec(variant=v, activation=activation, epochs=6, batch_size=batch, optimizer=optimizer[0], optimizer_args=optimizer[1], dtype=dtype, log_every=2)
    res = train(spec, XOR.X, Y, Ws, bs, np.array(lrs), seeds)
    assert not np.any(res.converged & res.diverged)
    assert np.all(res.epochs_to_converge[~res.converged] == -1)
    assert np.all((res.epochs_to_converge[res.converged] >= 0) & (res.epochs_to_converge[res.converged] <= 6))
    assert np.all((res.epochs_run >= 0) & (res.epochs_run <= 6))
    ok = ~res.diverged
    for key in ("mse", "accuracy", "max_error") + (("ce",) if v.output != "linear" else ()):
        assert np.all(np.isfinite(res.final[key][ok])), (key, res.final[key])
        assert np.all(np.isnan(res.final[key][~ok]))
    for key, curve in res.curves.items():
        assert not np.any(np.isinf(curve)), key


def test_huge_learning_rates_through_the_pipeline(tmp_path: Path) -> None:
    """lr 1e6 and 1e300 on XOR: rows come out diverged or non-converged; the summary and
    the comparison hold counts and rates, never NaN, and no warning reaches the terminal."""
    data = copy.deepcopy(BASE)
    data["learning_rates"] = [1.0, 1e6, 1e300]
    data["variants"] = ["ce", "mse", "ng-on-mse", "mse-linear"]
    data["training"] = {"epochs": 20}
    data["seeds"] = 3
    result = api.execute(load(data), out=tmp_path / "run", workers=1, command=["test"])
    runs = result.runs
    assert len(runs) == 4 * 3 * 3
    big = runs[runs["learning_rate"] == 1e300]
    assert big["diverged"].any() or not big["converged"].any()
    assert not (runs["converged"] & runs["diverged"]).any()
    assert runs.loc[~runs["converged"], "epochs_to_converge"].isna().all()
    alive = runs[~runs["diverged"]]
    for col in ("final_mse", "final_accuracy", "final_max_error"):
        assert np.isfinite(alive[col]).all(), (col, alive)
    assert np.isfinite(alive.loc[alive["output"] != "linear", "final_ce"]).all(), alive
    summary = result.summary
    for col in ("runs", "converged", "success_rate", "success_ci_low", "success_ci_high", "diverged"):
        assert summary[col].notna().all(), (col, summary[col])
    some_converged = summary["converged"] > 0
    assert summary.loc[some_converged, "epochs_median"].notna().all()
    healthy = summary["diverged"] < summary["runs"]
    for col in ("median_final_mse", "median_final_accuracy", "median_final_max_error"):
        assert np.isfinite(summary.loc[healthy, col]).all(), (col, summary[[col, "diverged"]])
    comparison = result.comparison
    for col in ("seeds_paired", "success_rate", "baseline_success_rate", "mcnemar_p", "win_rate"):
        assert comparison[col].notna().all(), (col, comparison[col])


def test_float32_and_a_huge_init_scale_raise_no_warning(tmp_path: Path) -> None:
    """Saturated float32 weights (scale 1e100 overflows float32) are data, not a warning."""
    data = copy.deepcopy(BASE)
    data["training"] = {"epochs": 5, "dtype": "float32"}
    data["model"] = {"hidden": [2], "init": {"scheme": "uniform", "scale": 1e100}}
    result = api.execute(load(data), out=tmp_path / "run", workers=1, command=["test"])
    assert len(result.runs) == 4
    assert not (result.runs["converged"] & result.runs["diverged"]).any()
    assert result.summary["success_rate"].notna().all()


def test_nan_never_validates_anywhere() -> None:
    """Every float in the schema refuses NaN and infinity (they would poison the runs)."""
    for key in ("learning_rates", "convergence.threshold", "model.init.scale", "dataset.noise", "dataset.test_fraction", "training.optimizer.eps"):
        for bad in (math.nan, math.inf):
            data = copy.deepcopy(BASE)
            value = [bad] if key == "learning_rates" else bad
            if key == "dataset.noise":
                data["dataset"] = {"name": "moons"}
            if key == "training.optimizer.eps":
                data["training"] = {"epochs": 5, "optimizer": {"name": "adam"}}
            put(data, key, value)
            with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("learning_rates", r"learning_rates\[0\]")):
                load(data)
