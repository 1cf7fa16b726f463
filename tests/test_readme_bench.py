"""The README's performance table is benchmarks/results.md's goals table, copied by
benchmarks/readme_block.py: it fails when either is edited without the other."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_block", ROOT / "benchmarks" / "readme_block.py")
readme_block = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_block)


def test_the_readme_quotes_the_benchmarks_goals_table():
    readme = (ROOT / "README.md").read_text()
    results = (ROOT / "benchmarks" / "results.md").read_text()
    assert readme.count(readme_block.START) == 1 and readme.count(readme_block.END) == 1
    assert readme_block.block(results) in readme, "README drifted from benchmarks/results.md: run python benchmarks/readme_block.py"


def test_a_changed_number_is_caught():
    results = (ROOT / "benchmarks" / "results.md").read_text()
    good = readme_block.block(results)
    readme = "intro\n" + good + "\nrest\n"
    assert readme_block.spliced(readme, good) == readme
    table_row = next(line for line in good.splitlines() if line.startswith("| W1"))
    cells = table_row.split("|")
    cells[3] = " 0.01 "  # the measured value of one goal
    drifted = readme.replace(table_row, "|".join(cells))
    assert good not in drifted
