"""`nnrun gradcheck`, and the engine's gradients against oracles that share none of its code:
finite differences of losses written out here in plain NumPy, and PyTorch autograd."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nnrun import gradcheck, variants
from nnrun.cli import app
from nnrun.network import backward, forward
from nnrun.variants import VARIANTS

runner = CliRunner()
EXACT = [n for n, v in VARIANTS.items() if v.exact]
MISMATCH = [n for n, v in VARIANTS.items() if not v.exact]


def gradcheck_json(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["gradcheck", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


# ----------------------------------------------------------------------------- the command


def test_default_config_passes():
    result = runner.invoke(app, ["gradcheck"])
    assert result.exit_code == 0, result.output
    assert "xor, hidden 4 (sigmoid)" in result.output
    for name in ("ce", "mse"):
        assert any(line.split("│")[1].strip() == name and "pass" in line for line in result.output.splitlines() if "│" in line)
    assert "FAIL" not in result.output


def test_default_config_json():
    code, out = gradcheck_json()
    assert code == 0 and out["ok"] is True
    assert [v["variant"] for v in out["variants"]] == ["ce", "mse"]
    assert out["network"] == {"dataset": "xor", "hidden": [4], "activation": "sigmoid", "bias": False, "reduction": "sum"}
    assert out["points"] == 3 and out["tolerance"] == gradcheck.TOLERANCE
    for v in out["variants"]:
        assert set(v) >= {"variant", "output", "loss", "delta", "exact", "max_rel_error", "rel_errors", "passed", "verdict", "explanation"}
        assert v["exact"] and v["passed"] and v["verdict"] == "pass" and v["explanation"] is None
        assert len(v["rel_errors"]) == 3 and v["max_rel_error"] == max(v["rel_errors"]) < 1e-6
        assert v["sizes"] == [3, 4, 1]


def test_every_variant_and_delta_rule_describes_itself():
    """One line of words and the formula, for `nnrun variants` to list."""
    for v in VARIANTS.values():
        assert v.description and "\n" not in v.description
        assert v.formula.endswith(f"L = {v.loss_formula}; δ = {v.delta_formula}")
    for rule in variants.DELTAS.values():
        assert rule.description and "\n" not in rule.description and rule.formula


def test_mismatches_fail_and_are_explained(write_config):
    """A forced delta fails against the loss it names; that is reported, not a failed check (exit code 1 is for exact variants only)."""
    path = write_config(variants=["ce", "mse", "ng-on-mse", "mitchell-on-ce"])
    result = runner.invoke(app, ["gradcheck", str(path)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "ng-on-mse: a − y is the gradient of cross-entropy, not of squared error (rel. error 0." in out
    assert "mitchell-on-ce: (a − y)·a(1 − a) is the gradient of squared error, not of cross-entropy (rel. error 0." in out
    assert out.count("fail (expected)") == 2

    code, data = gradcheck_json(str(path), "--points", "2")
    rows = {v["variant"]: v for v in data["variants"]}
    assert code == 0 and data["ok"] is True and data["points"] == 2
    for name in ("ce", "mse"):
        assert rows[name]["passed"] and rows[name]["max_rel_error"] < 1e-6
    for name in ("ng-on-mse", "mitchell-on-ce"):
        r = rows[name]
        assert not r["exact"] and not r["passed"] and r["verdict"] == "fail (expected)"
        assert r["max_rel_error"] > 1e-2 and len(r["rel_errors"]) == 2
        assert r["explanation"].startswith(f"{name}: ")


def test_a_broken_exact_delta_exits_1(write_config, monkeypatch):
    """Simulate an engine bug: mse's exact delta loses its σ'(z) factor."""
    monkeypatch.setitem(variants.EXACT_DELTAS, ("sigmoid", "mse"), variants.A_MINUS_Y)
    result = runner.invoke(app, ["gradcheck", str(write_config())])
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "FAIL" in out and "mse: backprop disagrees with finite differences of its own loss" in out
    assert "exact variants that FAILED: mse" in out
    code, data = gradcheck_json(str(write_config("again.yaml")))
    assert code == 1 and data["ok"] is False
    assert {v["variant"]: v["passed"] for v in data["variants"]} == {"ce": True, "mse": False}


def test_softmax_uses_two_units_on_binary_data_and_k_on_multiclass(write_config):
    names = ["ce-softmax", "mse-softmax", "mse-linear", "ce"]
    code, data = gradcheck_json(str(write_config(variants=names)))
    assert code == 0
    assert [v["sizes"][-1] for v in data["variants"]] == [2, 2, 1, 1]
    path = write_config("spirals.yaml", variants=names, dataset={"name": "spirals", "classes": 3, "n_samples": 30}, model={"hidden": [5], "bias": True, "activation": "tanh"})
    code, data = gradcheck_json(str(path))
    assert code == 0 and data["network"]["bias"] is True
    assert [v["sizes"] for v in data["variants"]] == [[3, 5, 3]] * 4
    assert all(v["max_rel_error"] < 1e-6 for v in data["variants"])


def test_a_softmax_with_mitchells_formula_is_the_gradient_of_no_known_loss(write_config):
    diagonal = {"name": "softmax-diagonal", "output": "softmax", "loss": "mse", "delta": "times_derivative"}
    code, data = gradcheck_json(str(write_config(variants=[diagonal])))
    (row,) = data["variants"]
    assert code == 0 and row["max_rel_error"] > 1e-2
    assert row["explanation"].startswith("softmax-diagonal: (a − y)·a(1 − a) is the gradient of no loss nnrun knows for a softmax output, not of squared error")


def test_a_sweep_config_checks_its_base_network(write_config):
    path = write_config(sweep={"model.activation": ["tanh", "relu"]}, model={"hidden": [3], "activation": "sigmoid"})
    result = runner.invoke(app, ["gradcheck", str(path)])
    assert result.exit_code == 0, result.output
    assert "hidden 3 (sigmoid)" in result.output and "sweep axes model.activation are not checked" in " ".join(result.output.split())
    code, data = gradcheck_json(str(path))
    assert data["network"]["activation"] == "sigmoid" and data["network"]["hidden"] == [3]


def test_set_overrides_apply():
    code, data = gradcheck_json("--set", "training.reduction=mean", "--set", "variants=[mse-linear]", "--points", "1")
    assert code == 0 and data["network"]["reduction"] == "mean" and data["variants"][0]["variant"] == "mse-linear"


@pytest.mark.parametrize("args, message", [(["--format", "xml"], "--format must be one of table, json, got 'xml'"), (["--set", "variants=[nope]"], "unknown variant 'nope'")])
def test_bad_input_exits_2_with_a_message(args, message):
    result = runner.invoke(app, ["gradcheck", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_bad_format_is_a_config_error():
    from nnrun.config import ConfigError

    with pytest.raises(ConfigError, match="--format"):
        gradcheck.run_gradcheck(None, sets=[], fmt="yaml", points=1, console=None)


def test_markdown_floors_tiny_errors():
    from nnrun.config import load

    cfg = load({"variants": ["ce", "ng-on-mse"], "model": {"hidden": [2]}})
    text = gradcheck.markdown(gradcheck.check(cfg, 2), error_floor=1e-8)
    lines = text.splitlines()
    assert lines[0].startswith("| variant | output | loss |") and len(lines) == 4
    assert "| `ce` | sigmoid | cross-entropy | exact: a − y | < 1e-08 | pass |" == lines[2]
    assert lines[3].startswith("| `ng-on-mse` | sigmoid | squared error | a_minus_y: a − y | 0.") and lines[3].endswith("| fail (expected) |")


# ----------------------------------------------------------------------------- independent oracle

# Written out here in plain NumPy on one run's (samples, units) arrays; nothing from nnrun.
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


HIDDEN = {"sigmoid": _sigmoid, "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}
OUTPUT = {"sigmoid": _sigmoid, "softmax": _softmax, "linear": lambda z: z}


def oracle_loss(loss: str, output: str, a: np.ndarray, y: np.ndarray) -> float:
    """Per-sample loss summed over units, summed over samples."""
    if loss == "mse":
        return float(0.5 * ((a - y) ** 2).sum())
    if output == "sigmoid":  # Bernoulli cross-entropy per unit
        return float(-(y * np.log(a) + (1 - y) * np.log(1 - a)).sum())
    return float(-(y * np.log(a)).sum())  # categorical cross-entropy


def oracle_forward(params, X, activation: str, output: str):
    a = X
    for l, (W, b) in enumerate(params):
        z = a @ W + (b if b is not None else 0.0)
        a = OUTPUT[output](z) if l == len(params) - 1 else HIDDEN[activation](z)
    return a


def oracle_fd(params, X, Y, activation, output, loss, scale, h=1e-5):
    """Central differences of the oracle's loss on every weight and bias of one run."""
    grads = []
    for W, b in params:
        for p in (W, b):
            if p is None:
                continue
            g = np.zeros_like(p)
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + h
                up = oracle_loss(loss, output, oracle_forward(params, X, activation, output), Y)
                p[idx] = old - h
                down = oracle_loss(loss, output, oracle_forward(params, X, activation, output), Y)
                p[idx] = old
                g[idx] = scale * (up - down) / (2 * h)
            grads.append(g)
    return np.concatenate([g.ravel() for g in grads])


def problem(output: str, bias: bool, runs: int = 2, seed: int = 0):
    """A 3-4-3-k net (two hidden layers, so the delta is backpropagated twice) and 6 samples."""
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 3, 3]
    X = rng.normal(size=(6, 3))
    if output == "softmax":
        Y = np.eye(3)[[0, 1, 2, 2, 1, 0]]
    elif output == "sigmoid":
        Y = rng.integers(0, 2, size=(6, 3)).astype(float)
    else:
        Y = rng.normal(size=(6, 3))
    Ws = [rng.normal(size=(i, o, runs)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(size=(o, runs)) if bias else None for o in sizes[1:]]
    return X, Y, Ws, bs


def engine_grads(Ws, bs, X, Y, activation, variant, scale):
    """The real code path: network.forward then network.backward; (params, runs)."""
    zs, acts = forward(Ws, bs, X, activation, variant)
    gW, gb = backward(Ws, zs, acts, Y[..., None], activation, variant, scale)
    R = Ws[0].shape[-1]
    parts = []
    for W, b, g, gbias in zip(Ws, bs, gW, gb):
        parts.append(g.reshape(-1, R))
        if b is not None:
            parts.append(gbias.reshape(-1, R))
    return np.concatenate(parts)


def rel_error(g, n):
    return float(np.linalg.norm(g - n) / max(np.linalg.norm(g), np.linalg.norm(n)))


def run_params(Ws, bs, r):
    return [(W[..., r].copy(), None if b is None else b[:, r].copy()) for W, b in zip(Ws, bs)]


@pytest.mark.parametrize(
    "name, activation, bias, reduction",
    list(itertools.product(VARIANTS, ["sigmoid", "tanh", "relu"], [False, True], ["sum", "mean"])),
)
def test_engine_gradient_against_an_independent_finite_difference_oracle(name, activation, bias, reduction):
    v = VARIANTS[name]
    X, Y, Ws, bs = problem(v.output, bias)
    scale = 1.0 / len(X) if reduction == "mean" else 1.0
    g = engine_grads(Ws, bs, X, Y, activation, v, scale)
    for r in range(g.shape[1]):
        fd = oracle_fd(run_params(Ws, bs, r), X, Y, activation, v.output, v.loss, scale)
        err = rel_error(g[:, r], fd)
        if v.exact:
            assert err < 1e-6, f"{name}: backprop vs finite differences of its loss, rel. error {err:.2e}"
        else:
            assert err > 1e-2, f"{name}: a forced delta should not be the gradient of its named loss (rel. error {err:.2e})"
            # …and it is the exact gradient of the other loss: the confusion, measured.
            other = {"ce": "mse", "mse": "ce"}[v.loss]
            err_other = rel_error(g[:, r], oracle_fd(run_params(Ws, bs, r), X, Y, activation, v.output, other, scale))
            assert err_other < 1e-6


def test_gradcheck_module_agrees_with_the_oracle():
    """gradcheck's own finite differences equal the oracle's on the same points."""
    v = VARIANTS["mse-softmax"]
    X, Y, Ws, bs = problem("softmax", True)
    numeric = gradcheck.numeric_gradients(Ws, bs, X, Y[..., None], "tanh", v, 1.0)
    R = Ws[0].shape[-1]
    flat = np.concatenate([p.reshape(-1, R) for p in numeric[:3]] + [p.reshape(-1, R) for p in numeric[3:]])
    for r in range(R):
        fd = oracle_fd(run_params(Ws, bs, r), X, Y, "tanh", "softmax", "mse", 1.0)
        # gradcheck orders W1..Wn then b1..bn; the oracle interleaves W1, b1, W2, b2, …
        sizes = [p.size // R for p in numeric]
        offsets = np.cumsum([0, *sizes])
        order = [0, 3, 1, 4, 2, 5]
        reordered = np.concatenate([flat[offsets[i] : offsets[i + 1], r] for i in order])
        np.testing.assert_allclose(reordered, fd, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- PyTorch oracle


def torch_grads(torch, params, X, Y, activation, output, loss, scale):
    tp = [(torch.tensor(W, requires_grad=True), None if b is None else torch.tensor(b, requires_grad=True)) for W, b in params]
    hidden = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation]
    a = torch.tensor(X)
    for l, (W, b) in enumerate(tp):
        z = a @ W + (b if b is not None else 0.0)
        if l < len(tp) - 1:
            a = hidden(z)
    y = torch.tensor(Y)
    if loss == "mse":
        out = {"sigmoid": torch.sigmoid, "softmax": lambda t: torch.softmax(t, dim=1), "linear": lambda t: t}[output](z)
        L = 0.5 * ((out - y) ** 2).sum()
    elif output == "sigmoid":
        L = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum")
    else:
        L = torch.nn.functional.cross_entropy(z, y.argmax(dim=1), reduction="sum")
    (L * scale).backward()
    grads = []
    for W, b in tp:
        grads.append(W.grad.numpy().ravel())
        if b is not None:
            grads.append(b.grad.numpy().ravel())
    return np.concatenate(grads)


@pytest.mark.parametrize("name, activation, bias, reduction", list(itertools.product(VARIANTS, ["sigmoid", "tanh", "relu"], [False, True], ["sum", "mean"])))
def test_engine_gradient_against_torch_autograd(name, activation, bias, reduction):
    torch = pytest.importorskip("torch")
    v = VARIANTS[name]
    X, Y, Ws, bs = problem(v.output, bias, seed=1)
    scale = 1.0 / len(X) if reduction == "mean" else 1.0
    g = engine_grads(Ws, bs, X, Y, activation, v, scale)
    for r in range(g.shape[1]):
        params = run_params(Ws, bs, r)
        tg = torch_grads(torch, params, X, Y, activation, v.output, v.loss, scale)
        if v.exact:
            np.testing.assert_allclose(g[:, r], tg, rtol=1e-10, atol=1e-12)
        else:
            assert rel_error(g[:, r], tg) > 1e-2
            other = {"ce": "mse", "mse": "ce"}[v.loss]
            np.testing.assert_allclose(g[:, r], torch_grads(torch, params, X, Y, activation, v.output, other, scale), rtol=1e-10, atol=1e-12)
