"""Copy the goals table of benchmarks/results.md (with the line naming its machine, and the
notes bounding the whole-process ratios by nnrun's start-up) into the README's performance
section, between its `bench:goals` markers, so the README quotes the benchmark's own output.
``--check`` exits 1 if the README has drifted from results.md."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:goals -->", "<!-- /bench:goals -->"
BOUNDS = ("- Start-up floor", "- W1 at ")  # the notes that say what bounds the whole-process goals


def block(results: str) -> str:
    """The README's block: where and when results.md was measured, its goals table, then
    the notes on the start-up floor."""
    lines = results.splitlines()
    machine = lines[2]  # "<date> · <cpu>, <cores>; Python …"
    i = lines.index("## Goals of the compiled backend on this machine")
    table = []
    for line in lines[i + 2 :]:
        if not line.startswith("|"):
            break
        table.append(line)
    bounds = [line for line in lines if line.startswith(BOUNDS)]
    return "\n".join([START, f"<sub>{machine}</sub>", "", *table, *([""] + bounds if bounds else []), END])


def spliced(readme: str, new: str) -> str:
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return head + new + tail


def main(argv: list[str]) -> int:
    results = (ROOT / "benchmarks" / "results.md").read_text()
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    want = spliced(readme, block(results))
    if "--check" in argv:
        return 0 if want == readme else 1
    readme_path.write_text(want)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
