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
        raise ResultsError(
            f"{', '.join(existing)}: already {'exists' if len(existing) == 1 else 'exist'}, and nnrun init never overwrites a file. "
            f"nnrun init writes {' and '.join(EXAMPLES)}, commented configs to copy from, into a directory; "
            f"name another one, e.g. nnrun init {_free_name(directory)}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    for name, target in zip(EXAMPLES, targets):
        target.write_text(resources.files("nnrun").joinpath("defaults", name).read_text(encoding="utf-8"), encoding="utf-8")
    return targets


def _free_name(directory: Path) -> str:
    """A directory beside ``directory`` where no example would overwrite anything."""
    base = "my-configs" if directory.name == "configs" else f"{directory.name}-examples"
    candidate, n = directory.parent / base, 1
    while any((candidate / name).exists() for name in EXAMPLES):
        n += 1
        candidate = directory.parent / f"{base}-{n}"
    return str(candidate)
