"""docs/study.md is exactly what docs/make_study_doc.py writes from the committed study.csv,
anchors.csv and study_run.json, and study.csv is a table `nnrun study` writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from nnrun import study

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def doc():
    spec = importlib.util.spec_from_file_location("make_study_doc", DOCS / "make_study_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_md_matches_the_committed_csv(doc):
    assert (DOCS / "study.md").read_text(encoding="utf-8") == doc.render(), "docs/study.md drifted: run python docs/make_study_doc.py"
    assert doc.main(["--check"]) == 0


def test_the_committed_study_csv_is_a_full_default_study():
    table = pd.read_csv(DOCS / "study.csv")
    assert list(table.columns) == study.STUDY_COLUMNS
    assert sorted(table["problem"].unique()) == sorted(f"suite-{p.stem.replace('_', '-')}" for p in (ROOT / "nnrun" / "suite").glob("*.yaml"))
    # the verdict in the document is the one nnrun prints for this table
    assert study.verdict(table) in (DOCS / "study.md").read_text(encoding="utf-8")


def test_every_table_row_appears_in_the_document(doc):
    text = (DOCS / "study.md").read_text(encoding="utf-8")
    for r in pd.read_csv(DOCS / "study.csv").itertuples(index=False):
        assert f"| {r.problem.removeprefix('suite-')} | {r.primary} | `{r.variant}` | {r.learning_rate:.4g}{' †' if r.at_edge else ''} | {doc.pct(r.success_rate, 0)} |" in text


def test_check_fails_on_a_drifted_document(doc, tmp_path, monkeypatch):
    target = tmp_path / "study.md"
    target.write_text("old", encoding="utf-8")
    monkeypatch.setattr(doc, "TARGET", target)
    assert doc.main(["--check"]) == 1
    assert doc.main([]) == 0 and doc.main(["--check"]) == 0
