"""The registries describe themselves and drive the rest: the schema takes exactly each
entry's parameters with the entry's defaults, the listings show every entry, the packaged
example config is generated from them, and every nnrun error exits 2 through one base."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from nnrun import listings
from nnrun.cli import app
from nnrun.config import Config, ConfigError, DatasetConfig, load
from nnrun.config import example as example_config
from nnrun.config.schema import DATASET_PARAMS, OPTIMIZER_PARAMS
from nnrun.datasets import DATASETS, DataError
from nnrun.errors import NnrunError, UsageError
from nnrun.executor import EXECUTORS, load_data
from nnrun.optim import OPTIMIZERS
from nnrun.registry import REQUIRED, Param, described, union
from nnrun.results import ResultsError
from nnrun.variants import ACTIVATION_FORMULAS, DELTA_RULES, OUTPUT_FORMULAS, VARIANTS

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def flat(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------------------- the schema


def test_an_unknown_dataset_parameter_names_the_key_and_lists_the_entrys_parameters(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: {name: circles, wobble: 2}\n", encoding="utf-8")
    code, out = invoke("validate", str(path))
    text = flat(out)
    assert code == 2, out
    assert f"{path}: dataset.wobble: unknown key; dataset 'circles' takes n_samples=200, noise=0.1, factor=0.5" in text
    assert "Traceback" not in out


def test_an_unknown_optimizer_argument_lists_the_registrys_arguments(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training: {optimizer: {name: momentum, wobble: 0.5}}\n", encoding="utf-8")
    code, out = invoke("validate", str(path))
    assert code == 2, out
    assert "training.optimizer.wobble: unknown key; optimizer 'momentum' takes beta=0.9" in flat(out)


def _valid_value(p: Param):
    return "x" if p.type is str else p.type(p.default if p.default not in (None, REQUIRED) else 1)


@pytest.mark.parametrize("name", list(DATASETS))
def test_a_dataset_takes_exactly_its_registry_parameters(name):
    entry = DATASETS[name]
    required = {p.name: _valid_value(p) for p in entry.params if p.required}
    for key, p in DATASET_PARAMS.items():
        section = {"name": name, **required, key: _valid_value(p)}
        if any(q.name == key for q in entry.params):
            given = getattr(load({"dataset": section}).dataset, key)
            assert given == section[key] or str(given).endswith(f"/{section[key]}")  # a path is made absolute
        else:
            with pytest.raises(ConfigError, match=rf"dataset\.{key} does not apply to dataset '{name}'"):
                load({"dataset": section})


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_an_optimizer_takes_exactly_its_registry_arguments(name):
    takes = {p.name for p in OPTIMIZERS[name].params}
    for key in OPTIMIZER_PARAMS:
        section = {"name": name, key: 0.5}
        if key in takes:
            assert dict(load({"training": {"optimizer": section}}).training.optimizer.args())[key] == 0.5
        else:
            with pytest.raises(ConfigError, match=rf"training\.optimizer\.{key} does not apply to optimizer '{name}'"):
                load({"training": {"optimizer": section}})


def test_the_schema_keys_of_registry_sections_are_the_registry_parameters():
    assert set(DATASET_PARAMS) == {p.name for d in DATASETS.values() for p in d.params}
    assert set(DATASET_PARAMS) <= set(DatasetConfig.model_fields)
    assert set(OPTIMIZER_PARAMS) == {p.name for o in OPTIMIZERS.values() for p in o.params}


def test_defaults_come_from_the_registry_entry():
    # torch.optim.Adam's documented defaults: betas=(0.9, 0.999), eps=1e-8
    assert load({"training": {"optimizer": {"name": "adam", "eps": 1e-6}}}).training.optimizer.args() == (("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-6))
    assert load({"training": {"optimizer": {"name": "momentum"}}}).training.optimizer.args() == (("beta", 0.9),)
    # 3-bit parity: 8 rows of 3 bits plus the bias column; 2-input AND: 4 rows
    assert load_data(load({"dataset": {"name": "parity"}})).X.shape == (8, 4)
    assert load_data(load({"dataset": {"name": "and"}})).X.shape == (4, 3)


GENERATED = [(d.name, p) for d in DATASETS.values() if not d.own_split and not d.from_file for p in d.params]


@pytest.mark.parametrize(("name", "param"), GENERATED, ids=[f"{n}-{p.name}" for n, p in GENERATED])
def test_every_dataset_parameter_reaches_the_data(name, param):
    """A parameter the config sets is passed on to the generator, never silently dropped."""
    changed = param.default + 1 if param.type is int else param.default / 2
    base = load_data(load({"dataset": {"name": name}}))
    other = load_data(load({"dataset": {"name": name, param.name: changed}}))
    assert base.X.shape != other.X.shape or not np.array_equal(base.X, other.X)


def test_entries_sharing_a_parameter_name_must_agree_on_its_type_and_bounds():
    class Entry:
        def __init__(self, name, params):
            self.name, self.params = name, params

    a = Entry("a", (Param("noise", float, 0.1, "std", ge=0),))
    b = Entry("b", (Param("noise", float, 1.0, "std", ge=0),))
    c = Entry("c", (Param("noise", float, 0.1, "std", gt=1),))
    assert list(union([a, b])) == ["noise"]
    with pytest.raises(ValueError, match="c: parameter 'noise' differs"):
        union([a, c])


# ----------------------------------------------------------------------------- listings


def _first_column(output: str) -> set[str]:
    return {line.split("│")[1].strip() for line in output.splitlines() if line.startswith("│") and line.split("│")[1].strip()}


def test_nnrun_datasets_lists_every_registry_entry_with_its_parameters():
    code, out = invoke("datasets")
    assert code == 0, out
    assert set(DATASETS) <= _first_column(out)
    for entry in DATASETS.values():
        for p in entry.params:
            assert described([p]) in out
    assert "bias_column, standardize, test_fraction, shuffle_seed" in flat(out)


def test_nnrun_variants_lists_every_variant_and_every_building_block():
    code, out = invoke("variants")
    assert code == 0, out
    assert set(VARIANTS) <= _first_column(out)
    assert "ce: −Σ[y log a + (1−y) log(1−a)]" in out  # brackets shown as written, not read as markup
    for name in (*ACTIVATION_FORMULAS, *OUTPUT_FORMULAS, *DELTA_RULES):
        assert f"│ {name} " in out


@pytest.mark.parametrize(("command", "registry"), [("optimizers", OPTIMIZERS), ("executors", EXECUTORS)])
def test_nnrun_optimizers_and_executors_list_every_registry_entry(command, registry):
    code, out = invoke(command)
    assert code == 0, out
    assert set(registry) <= _first_column(out)
    for entry in registry.values():
        assert described(entry.params) in out


def test_an_unknown_executor_lists_the_registry():
    code, out = invoke("train", "nothing.yaml", "--executor", "dusk")
    listed = ", ".join(list(EXECUTORS)[:-1]) + f" or {list(EXECUTORS)[-1]}"
    assert code == 2 and f"--executor must be {listed}, got 'dusk' (did you mean 'dask'?)" in flat(out)


# ----------------------------------------------------------------------------- the example config


def test_the_packaged_example_is_what_the_registries_and_schema_generate():
    text = example_config.PACKAGED.read_text(encoding="utf-8")
    assert text == example_config.example(), "nnrun/defaults/example.yaml drifted: run python -m nnrun.config.example"


def test_the_example_config_is_valid_and_holds_the_defaults():
    config = load(example_config.PACKAGED)
    assert config == Config(name="example")
    text = example_config.PACKAGED.read_text(encoding="utf-8")
    for name in (*DATASETS, *OPTIMIZERS):
        assert name in text
    for key in (*DATASET_PARAMS, *OPTIMIZER_PARAMS):
        assert f"# {key}:" in text


def test_example_check_mode_fails_on_a_stale_copy(tmp_path, monkeypatch):
    stale = tmp_path / "example.yaml"
    stale.write_text("name: old\n", encoding="utf-8")
    monkeypatch.setattr(example_config, "PACKAGED", stale)
    assert example_config.main(["--check"]) == 1
    assert example_config.main([]) == 0 and example_config.main(["--check"]) == 0


# ----------------------------------------------------------------------------- errors


def test_every_input_error_shares_one_base():
    for error in (ConfigError, DataError, ResultsError, UsageError):
        assert issubclass(error, NnrunError) and error.exit_code == 2


def test_the_cli_turns_any_nnrun_error_into_exit_2_and_its_message(monkeypatch):
    class NewKindOfError(NnrunError):
        pass

    def fail():
        raise NewKindOfError("thing.yaml: key must be a thing, got 3")

    monkeypatch.setattr(listings, "datasets", fail)
    code, out = invoke("datasets")
    assert code == 2 and "error: thing.yaml: key must be a thing, got 3" in out and "internal error" not in out
