"""README.md's "Which delta is correct?" section is exactly what docs/make_readme_tables.py
generates from nnrun's own output (gradcheck and the default sweep, rerun here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "make_readme_tables.py"


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("make_readme_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tables) -> str:
    return tables.section()  # reruns gradcheck and the default sweep (a few seconds)


def test_readme_section_matches_the_script(tables, generated):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert tables.START in text and tables.END in text, "README.md lost its which-delta markers"
    assert tables.current_section(text) == generated, "README.md's tables drifted: run python docs/make_readme_tables.py"


def test_the_section_answers_from_nnruns_output(generated):
    assert generated.startswith("## Which delta is correct?\n")
    assert "**Both — for different losses.**" in generated
    assert "| `ce` | sigmoid | cross-entropy | exact: a − y | < 1e-08 | pass |" in generated
    assert "| `mse` | sigmoid | squared error | exact: (a − y)·a(1 − a) | < 1e-08 | pass |" in generated
    assert "- ng-on-mse: a − y is the gradient of cross-entropy, not of squared error (rel. error 0." in generated
    assert "| `mse` at lr " in generated and " vs `ce` at lr " in generated


def test_check_mode_fails_on_a_drifted_readme_and_passes_after_regeneration(tables, generated, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "section", lambda: generated)  # one sweep per test session is enough
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{tables.START}\nold numbers\n{tables.END}\n\nafter\n", encoding="utf-8")
    assert tables.main(["--check", "--readme", str(readme)]) == 1
    assert tables.main(["--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# x\n\n") and text.endswith(f"{tables.END}\n\nafter\n")
    assert tables.main(["--check", "--readme", str(readme)]) == 0


def test_splice_adds_a_missing_closing_marker(tables):
    text = tables.splice(f"a\n{tables.START}\n\nrest\n", "BODY")
    assert text == f"a\n{tables.START}\nBODY\n{tables.END}\n\nrest\n"
