"""`nnrun init`: commented example configs to start from."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from nnrun.results import ResultsError

EXAMPLES = ("example.yaml", "xor.yaml")


def write_examples(directory: Path) -> list[Path]:
    """Copy the packaged examples into ``directory``; never overwrite a file."""
    directory = Path(directory)
    targets = [directory / name for name in EXAMPLES]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise ResultsError(f"{', '.join(existing)}: already exist(s); nnrun init never overwrites a file. Choose another directory")
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in zip(EXAMPLES, targets):
        target.write_text(resources.files("nnrun").joinpath("defaults", name).read_text(encoding="utf-8"), encoding="utf-8")
    return targets
