"""Real data: scikit-learn's data sets, CSV files, stratified splits, held-out metrics, warm starts.

Oracles are independent of nnrun: scikit-learn's bundled arrays, StandardScaler and
MLPClassifier, class counts worked by hand, and a plain NumPy forward pass over the
weights nnrun saved.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn.datasets as skd
import yaml
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from conftest import ROOT
from nnrun import api
from nnrun.cli import app
from nnrun.config import load as load_config
from nnrun.datasets import DataError, id_ranges, load, stratified_split
from nnrun.executor import layer_sizes, load_data, load_init_file

# ----------------------------------------------------------------------------- scikit-learn data sets


def test_digits_pixels_are_scaled_to_unit_interval():
    data = load("digits", bias_column=False)
    raw = skd.load_digits()
    assert data.X.shape == (1797, 64)
    assert data.X.min() == 0.0 and data.X.max() == 1.0
    np.testing.assert_array_equal(data.X * 16, raw.data)  # /16 is exact in binary
    np.testing.assert_array_equal(data.labels, raw.target)
    assert data.task == "multiclass" and len(data.classes) == 10


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_multiclass_targets_are_one_hot(output):
    data = load("digits", bias_column=False)
    Y = data.targets(output)
    assert Y.shape == (1797, 10)
    assert set(np.unique(Y)) == {0.0, 1.0}
    np.testing.assert_array_equal(Y.sum(axis=1), 1.0)
    np.testing.assert_array_equal(Y.argmax(axis=1), skd.load_digits().target)


@pytest.mark.parametrize(("name", "shape", "n_classes"), [("iris", (150, 4), 3), ("breast_cancer", (569, 30), 2)])
def test_iris_and_breast_cancer_are_standardised(name, shape, n_classes):
    data = load(name, bias_column=False)
    raw = getattr(skd, f"load_{name}")()
    assert data.X.shape == shape
    np.testing.assert_allclose(data.X, StandardScaler().fit_transform(raw.data), rtol=0, atol=1e-12)
    np.testing.assert_allclose(data.X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(data.X.std(axis=0), 1.0, atol=1e-12)
    np.testing.assert_array_equal(data.labels, raw.target)
    assert len(data.classes) == n_classes


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
def test_standardisation_uses_training_statistics_only(name):
    raw = getattr(skd, f"load_{name}")()
    data = load(name, bias_column=False, test_fraction=0.25, shuffle_seed=3)
    train, test = stratified_split(raw.target, 0.25, 3, stratify=True)
    scaler = StandardScaler().fit(raw.data[train])
    np.testing.assert_allclose(data.X, scaler.transform(raw.data[train]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(data.X_test, scaler.transform(raw.data[test]), rtol=0, atol=1e-12)
    assert np.abs(data.X_test.mean(axis=0)).max() > 1e-3  # not re-centred on its own statistics


def test_breast_cancer_is_binary_one_unit_unless_softmax():
    data = load("breast_cancer")
    assert data.task == "binary"
    assert data.targets("sigmoid").shape == (569, 1)
    np.testing.assert_array_equal(data.targets("sigmoid")[:, 0], skd.load_breast_cancer().target)
    assert data.targets("softmax").shape == (569, 2)


def test_bias_column_is_appended_after_standardising():
    data = load("iris", bias_column=True, test_fraction=0.2)
    assert data.X.shape[1] == 5 and data.feature_names[-1] == "bias"
    np.testing.assert_array_equal(data.X[:, -1], 1.0)
    np.testing.assert_array_equal(data.X_test[:, -1], 1.0)


@pytest.mark.parametrize("name", ["digits", "iris", "breast_cancer"])
def test_missing_scikit_learn_names_the_extra(name, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn…` now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match=r"scikit-learn.*'datasets' extra.*pip install 'nnrun\[datasets\]'") as err:
        load(name)
    assert repr(name) in str(err.value)


def test_missing_scikit_learn_is_exit_2_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "t", "dataset": {"name": "iris", "shuffle_seed": 987}, "training": {"epochs": 2}, "seeds": 1}))
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(tmp_path / "out"), "--workers", "1", "-q"])
    assert result.exit_code == 2, result.output
    assert "nnrun[datasets]" in result.output and "Traceback" not in result.output


# ----------------------------------------------------------------------------- splits


def test_split_is_deterministic_disjoint_and_complete():
    labels = skd.load_digits().target
    a = stratified_split(labels, 0.2, 7, stratify=True)
    b = stratified_split(labels, 0.2, 7, stratify=True)
    c = stratified_split(labels, 0.2, 8, stratify=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    train, test = a
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.r_[train, test]), np.arange(len(labels)))


def test_split_is_stratified():
    labels = skd.load_digits().target
    # Class sizes of digits, 0..9, and a fifth of each rounded: worked by hand.
    assert list(np.bincount(labels)) == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    expected = [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    for seed in (0, 1, 2):
        _, test = stratified_split(labels, 0.2, seed, stratify=True)
        assert list(np.bincount(labels[test], minlength=10)) == expected


def test_split_keeps_every_class_in_training():
    labels = np.array([0] * 20 + [1])  # class 1 has a single sample
    train, test = stratified_split(labels, 0.6, 0, stratify=True)
    assert 20 in train and 20 not in test
    assert len(test) == 12


def test_load_applies_the_same_split_every_time_and_per_seed():
    a = load("digits", test_fraction=0.2, shuffle_seed=0)
    b = load("digits", test_fraction=0.2, shuffle_seed=0)
    c = load("digits", test_fraction=0.2, shuffle_seed=1)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert a.X.shape == (1797 - 359, 65) and a.X_test.shape == (359, 65)
    assert not np.array_equal(a.X_test, c.X_test)
    raw = skd.load_digits()
    _, test = stratified_split(raw.target, 0.2, 0, stratify=True)
    np.testing.assert_array_equal(a.X_test[:, :-1] * 16, raw.data[test])
    np.testing.assert_array_equal(a.labels_test, raw.target[test])


# ----------------------------------------------------------------------------- CSV


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_features_in_file_order_labels_sorted_and_numbered(tmp_path):
    path = write(tmp_path, "b,species,a,c\n1,cat,10,5\n2,ant,20,6\n3,bee,30,7\n4,cat,40,8\n")
    data = load("csv", path=path, target="species", standardize=False, bias_column=False)
    assert data.feature_names == ("b", "a", "c")
    np.testing.assert_array_equal(data.X, [[1, 10, 5], [2, 20, 6], [3, 30, 7], [4, 40, 8]])
    assert data.classes == ("ant", "bee", "cat")
    np.testing.assert_array_equal(data.labels, [2, 0, 1, 2])
    np.testing.assert_array_equal(data.targets("softmax"), np.eye(3)[[2, 0, 1, 2]])


def test_csv_integer_labels_sort_numerically(tmp_path):
    path = write(tmp_path, "x,y\n0,10\n1,2\n2,9\n3,2\n")
    data = load("csv", path=path, target="y", standardize=False)
    assert data.classes == ("2", "9", "10")  # numbers, not strings: 9 before 10
    np.testing.assert_array_equal(data.labels, [2, 0, 1, 0])


def test_csv_zero_one_target_is_binary_with_one_output(tmp_path):
    path = write(tmp_path, "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    data = load("csv", path=path, target="y", standardize=False)
    assert data.task == "binary"
    np.testing.assert_array_equal(data.targets("sigmoid"), [[0], [1], [1], [0]])
    np.testing.assert_array_equal(data.X[:, -1], 1.0)  # bias column by default


def test_csv_standardises_by_default_with_training_statistics(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(40, 2))
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    frame = pd.DataFrame({"f1": X[:, 0], "label": y, "f2": X[:, 1]})
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    data = load("csv", path=path, target="label", test_fraction=0.25, shuffle_seed=4, bias_column=False)
    train, test = stratified_split(y, 0.25, 4, stratify=True)
    assert list(np.bincount(y[test])) == [5, 5]
    scaler = StandardScaler().fit(X[train])
    np.testing.assert_allclose(data.X, scaler.transform(X[train]), atol=1e-12)
    np.testing.assert_allclose(data.X_test, scaler.transform(X[test]), atol=1e-12)
    raw = load("csv", path=path, target="label", standardize=False, bias_column=False)
    np.testing.assert_allclose(raw.X, X, atol=1e-12)


def test_csv_regression_target(tmp_path):
    path = write(tmp_path, "x,t\n0,0.5\n1,1.7\n2,3.25\n")
    data = load("csv", path=path, target="t", standardize=False, bias_column=False)
    assert data.task == "regression" and data.classes is None
    np.testing.assert_array_equal(data.targets("linear"), [[0.5], [1.7], [3.25]])


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("x,y\n1,0\nabc,1\n", {"target": "y"}, r"column 'x' must be numeric, but line 3 holds 'abc'"),
        ("x,y\n1,0\n2,1\n", {"target": "label"}, r"no column 'label' \(dataset.target\); the columns are x, y"),
        ("x,y\n1,1\n2,1\n", {"target": "y"}, r"single class .*dataset.task: binary"),
        ("x,y\n1,0\n,1\n", {"target": "y"}, r"missing value on line 3"),
    ],
)
def test_csv_errors_name_the_file_and_the_fix(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        load("csv", path=path, **kwargs)
    assert str(path) in str(err.value)


def test_csv_single_class_allowed_when_task_is_set(tmp_path):
    path = write(tmp_path, "x,y\n1,1\n")
    data = load("csv", path=path, target="y", task="binary", standardize=False)
    assert data.classes == ("0", "1")
    np.testing.assert_array_equal(data.targets("sigmoid"), [[1.0]])


# ----------------------------------------------------------------------------- held-out metrics, against scikit-learn

DIGITS_RUN = dict(lr=1.0, epochs=15, batch=64, seeds=[0, 1, 2])


def _forward(x: np.ndarray, weights: np.ndarray, run_id: int, layers: int, output: str) -> np.ndarray:
    """A plain NumPy forward pass over the weights nnrun saved (sigmoid hidden units)."""
    a = x
    for l in range(1, layers + 1):
        z = a @ weights[f"r{run_id}.W{l}"] + weights[f"r{run_id}.b{l}"]
        if l < layers or output == "sigmoid":
            a = 1 / (1 + np.exp(-z))
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
    return a


def test_digits_test_accuracy_matches_scikit_learns_mlp(tmp_path):
    """ce-softmax on a 64-32-10 sigmoid net against MLPClassifier trained the same way.

    Same data and split, sgd without momentum, learning rate, batch size, epochs, no L2,
    Glorot-uniform weights of scikit-learn's logistic bound √(2/(fan_in+fan_out)).
    """
    p = DIGITS_RUN
    config = load_config(
        {
            "name": "digits-vs-sklearn",
            "dataset": {"name": "digits", "bias_column": False, "test_fraction": 0.2, "shuffle_seed": 0},
            "model": {"hidden": [32], "activation": "sigmoid", "bias": True, "init": {"scheme": "xavier", "scale": float(np.sqrt(1 / 3))}},
            "training": {"epochs": p["epochs"], "batch_size": p["batch"], "reduction": "mean", "optimizer": {"name": "sgd"}},
            "variants": ["ce-softmax", "mse-softmax"],
            "learning_rates": [p["lr"]],
            "seeds": p["seeds"],
            "convergence": {"criterion": "accuracy", "threshold": 0.9, "stop_converged": False},
            "logging": {"every": 5, "save_weights": True},
        }
    )
    result = api.execute(config, out=tmp_path / "out", workers=1, command=["test"])
    runs = result.runs
    for column in ("final_test_accuracy", "final_test_ce", "final_test_mse"):
        assert column in runs.columns and runs[column].notna().all()

    # runs.csv's held-out metrics are those of the saved final weights on the held-out rows.
    raw = skd.load_digits()
    train, test = stratified_split(raw.target, 0.2, 0, stratify=True)
    X_train, X_test, y_train, y_test = raw.data[train] / 16, raw.data[test] / 16, raw.target[train], raw.target[test]
    Y_test = np.eye(10)[y_test]
    with np.load(tmp_path / "out" / "weights.npz") as npz:
        weights = dict(npz)
    for row in runs.itertuples():
        a = _forward(X_test, weights, row.run_id, 2, "softmax")
        assert row.final_test_accuracy == pytest.approx(np.mean(a.argmax(axis=1) == y_test), abs=1e-12)
        assert row.final_test_ce == pytest.approx(np.mean(-np.log(a[np.arange(len(a)), y_test])), rel=1e-9)
        assert row.final_test_mse == pytest.approx(np.mean(0.5 * ((a - Y_test) ** 2).sum(axis=1)), rel=1e-9)

    ours = runs.loc[runs["variant"] == "ce-softmax", "final_test_accuracy"].to_numpy()
    theirs = []
    for seed in p["seeds"]:
        mlp = MLPClassifier(
            hidden_layer_sizes=(32,), activation="logistic", solver="sgd", learning_rate="constant",
            learning_rate_init=p["lr"], momentum=0.0, nesterovs_momentum=False, batch_size=p["batch"],
            alpha=0.0, max_iter=p["epochs"], shuffle=True, tol=0.0, n_iter_no_change=10**6, random_state=seed,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the point here
            mlp.fit(X_train, y_train)
        theirs.append(mlp.score(X_test, y_test))
    assert np.median(theirs) > 0.9  # the oracle itself learned
    assert abs(np.median(ours) - np.median(theirs)) < 0.03, (ours, theirs)


# ----------------------------------------------------------------------------- warm starts


def _iris_config(epochs: int, variant: str, hidden=(3,), **init) -> dict:
    return {
        "name": "iris-warm",
        "dataset": {"name": "iris", "test_fraction": 0.2, "shuffle_seed": 0},
        "model": {"hidden": list(hidden), "bias": True, "init": init or {"scheme": "xavier"}},
        "training": {"epochs": epochs, "batch_size": "full", "reduction": "mean", "optimizer": {"name": "sgd"}},
        "variants": [variant],
        "learning_rates": [0.2, 0.5],
        "seeds": [0, 1],
        "convergence": {"criterion": "accuracy", "threshold": 0.5, "stop_converged": False},
        "logging": {"every": 1, "save_weights": True},
    }


def _weights(directory: Path) -> dict[str, np.ndarray]:
    with np.load(directory / "weights.npz") as npz:
        return dict(npz)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Iris 5-3-3 runs of 7 epochs (run ids 0–3: lr 0.2, 0.5 × seeds 0, 1), and of 7 + 5."""
    root = tmp_path_factory.mktemp("warm")
    out = {}
    for variant in ("ce-softmax", "mse"):
        for epochs in (7, 12):
            path = root / f"{variant}-{epochs}"
            api.execute(load_config(_iris_config(epochs, variant)), out=path, workers=1, command=["test"])
            out[variant, epochs] = path
    return out


@pytest.mark.parametrize("variant", ["ce-softmax", "mse"])
@pytest.mark.parametrize("form", ["dir", "file", "parent"])
def test_warm_start_resumes_exactly_where_a_run_ended(pretrained, tmp_path, variant, form):
    short, long_ = pretrained[variant, 7], pretrained[variant, 12]
    path = {"dir": short, "file": short / "weights.npz", "parent": short.parent / f"only-{variant}"}[form]
    if form == "parent":  # results/<name>/ holding a single results directory
        path.mkdir(exist_ok=True)
        (path / "run").symlink_to(short, target_is_directory=True)
    # The warm batch has the pretraining's composition (lr 0.2, 0.5 × seeds 0, 1), so even
    # the order of every floating-point sum is the same; all four runs start from run 3.
    config = _iris_config(5, variant, scheme="file", path=str(path), run_id=3)
    api.execute(load_config(config), out=tmp_path / "warm", workers=1, command=["test"])
    warm, first, whole = _weights(tmp_path / "warm"), _weights(short), _weights(long_)
    for name in ("W1", "b1", "W2", "b2"):
        for r in range(4):
            np.testing.assert_array_equal(warm[f"r{r}.{name}.init"], first[f"r3.{name}"])
        for r in (2, 3):  # lr 0.5, as run 3; full batch, so the seed plays no part
            np.testing.assert_array_equal(warm[f"r{r}.{name}"], whole[f"r3.{name}"])  # bit for bit
        assert not np.array_equal(warm[f"r3.{name}"], first[f"r3.{name}"])  # it did train on
        assert not np.array_equal(warm[f"r0.{name}"], whole[f"r3.{name}"])  # lr 0.2 ends elsewhere
    assert not np.array_equal(whole["r3.W1"], whole["r1.W1"])  # so run 3, not another, was picked
    warm_row = pd.read_csv(tmp_path / "warm" / "runs.csv").iloc[3]
    whole_row = pd.read_csv(long_ / "runs.csv").iloc[3]
    for column in ("final_ce", "final_mse", "final_accuracy", "final_test_accuracy", "final_test_ce", "final_test_mse"):
        assert warm_row[column] == whole_row[column]


def _file_config(path: Path, **changes) -> "object":
    config = _iris_config(5, "ce-softmax", scheme="file", path=str(path), run_id=3)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    return load_config(config)


def _load_init(config) -> list:
    sizes = layer_sizes(config, load_data(config), config.variant_objects()[0].output)
    return load_init_file(config, sizes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model__hidden": [4]}, r"r3\.W1 has shape \(5, 3\), but layer 1 of this network \(5 → 4 → 3\) needs \(5, 4\)"),
        ({"model__hidden": [3, 3]}, r"no array 'r3\.W3' for layer 3 of 3"),
        ({"model__hidden": []}, r"holds more layers than the network's 1; check model.hidden"),
        ({"dataset__bias_column": False}, r"r3\.W1 has shape \(5, 3\), but layer 1 .* needs \(4, 3\)"),
        ({"model__bias": False}, r"bias vectors, which model.bias: false would drop"),
    ],
)
def test_warm_start_shape_mismatches_are_clear(pretrained, changes, message):
    config = _file_config(pretrained["ce-softmax", 7], **changes)
    with pytest.raises(DataError, match=message) as err:
        _load_init(config)
    assert "weights.npz" in str(err.value)


def test_warm_start_from_another_data_set_is_a_shape_error(pretrained):
    config = _file_config(pretrained["ce-softmax", 7], dataset={"name": "breast_cancer", "test_fraction": 0.2})
    with pytest.raises(DataError, match=r"W1 has shape \(5, 3\).*needs \(31, 3\)"):
        _load_init(config)


def test_warm_start_errors_name_the_runs_there(pretrained, tmp_path):
    short = pretrained["ce-softmax", 7]
    with pytest.raises(DataError, match=r"no weights for run 9 \(model.init.run_id\); it holds runs 0–3"):
        _load_init(_file_config(short, model={"hidden": [3], "bias": True, "init": {"scheme": "file", "path": str(short), "run_id": 9}}))
    with pytest.raises(DataError, match=r"holds the weights of 4 runs \(ids 0–3\); choose one with model.init.run_id"):
        _load_init(_file_config(short, model={"hidden": [3], "bias": True, "init": {"scheme": "file", "path": str(short)}}))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "runs.csv").write_text("run_id\n")
    with pytest.raises(DataError, match=r"no weights.npz here .*logging.save_weights: true"):
        _load_init(_file_config(tmp_path / "empty"))
    for name in ("a", "b"):
        (tmp_path / "many" / name).mkdir(parents=True)
        (tmp_path / "many" / name / "weights.npz").write_bytes(b"")
    with pytest.raises(DataError, match=r"several results with weights \(a, b\)"):
        _load_init(_file_config(tmp_path / "many"))
    assert id_ranges([0, 1, 2, 5, 7, 8]) == "0–2, 5, 7–8"


def test_warm_start_refuses_another_test_split(pretrained):
    config = _file_config(pretrained["ce-softmax", 7], dataset={"name": "iris", "test_fraction": 0.2, "shuffle_seed": 1})
    with pytest.raises(DataError, match=r"test_fraction 0.2 and shuffle_seed 0, but this config .* shuffle_seed 1"):
        _load_init(config)


def test_warm_start_from_a_bare_npz(tmp_path):
    W1, b1, W2, b2 = np.arange(15.0).reshape(5, 3) / 10, np.ones(3), np.eye(3), np.zeros(3)
    np.savez(tmp_path / "w.npz", W1=W1, b1=b1, W2=W2, b2=b2)
    config = _file_config(tmp_path / "w.npz", model={"hidden": [3], "bias": True, "init": {"scheme": "file", "path": str(tmp_path / "w.npz")}})
    (gW1, gb1), (gW2, gb2) = _load_init(config)
    np.testing.assert_array_equal(gW1, W1)
    np.testing.assert_array_equal(gb2, b2)


def test_warm_start_error_through_the_cli_is_exit_2(pretrained, tmp_path):
    config = _iris_config(5, "ce-softmax", hidden=(4,), scheme="file", path=str(pretrained["ce-softmax", 7]), run_id=0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "-q"])
    assert result.exit_code == 2, result.output
    assert "r0.W1 has shape (5, 3)" in result.output.replace("\n", "") and "Traceback" not in result.output


# ----------------------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("name", ["digits", "finetune_pretrain", "finetune"])
def test_shipped_configs_validate(name):
    config = load_config(ROOT / "configs" / f"{name}.yaml")
    assert config.dataset.name == "digits" and config.dataset.test_fraction == 0.2


def test_finetune_pair_runs_end_to_end(tmp_path):
    """The two shipped configs, shrunk, chained exactly as their comments say."""
    pre = load_config(ROOT / "configs" / "finetune_pretrain.yaml", ["training.epochs=2", "seeds=2"])
    api.execute(pre, out=tmp_path / "pre", workers=1, command=["test"])
    fine = load_config(ROOT / "configs" / "finetune.yaml", ["training.epochs=2", "seeds=2", "learning_rates=[1]", f"model.init.path={tmp_path / 'pre'}", "model.init.run_id=1"])
    result = api.execute(fine, out=tmp_path / "fine", workers=1, command=["test"])
    assert list(result.runs["variant"]) == ["ce-softmax"] * 2 + ["mse-softmax"] * 2
    assert result.runs["final_test_accuracy"].gt(0.8).all()
