"""What a registry entry says about itself: its parameters, their defaults and what they mean.

The data sets (``datasets.DATASETS``), optimisers (``optim.OPTIMIZERS``) and executors
(``executor.EXECUTORS``) are tables of entries that each carry a one-line description and
their ``Param``s. The config schema, ``nnrun datasets``, the example config and the help
texts are derived from them, so adding an entry is one edit, and its defaults live there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of a parameter the user must give


@dataclass(frozen=True)
class Param:
    """One parameter: its name, type, default (``REQUIRED``: no default), bounds and meaning."""

    name: str
    type: type
    default: Any
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def bounds(self) -> dict[str, float]:
        """The bounds that are set, as keyword arguments (``ge=1, le=16``)."""
        return {k: getattr(self, k) for k in ("ge", "gt", "le", "lt") if getattr(self, k) is not None}

    def same_kind(self, other: "Param") -> bool:
        """Two entries may share a parameter name only with one type and one set of bounds,
        so that a config key means one thing whichever entry it is given to."""
        return (self.type, self.bounds()) == (other.type, other.bounds())


def resolve(params: Iterable[Param], given: Mapping[str, Any], owner: str, error: type[Exception] = ValueError) -> dict[str, Any]:
    """``given`` (None: not given) over the defaults, in ``params``' order. A name that is not
    a parameter, or a required one that is missing, raises ``error`` naming ``owner``."""
    params = tuple(params)
    names = [p.name for p in params]
    unknown = [k for k, v in given.items() if v is not None and k not in names]
    if unknown:
        takes = ", ".join(names) if names else "no parameters"
        raise error(f"{owner} takes {takes}, not {', '.join(unknown)}")
    missing = [p.name for p in params if p.required and given.get(p.name) is None]
    if missing:
        raise error(f"{owner} needs {' and '.join(missing)}")
    return {p.name: given[p.name] if given.get(p.name) is not None else p.default for p in params}


def union(entries: Iterable[Any]) -> dict[str, Param]:
    """Every parameter name the entries use, in order of first use, each with its first
    ``Param``; ValueError when two entries give one name different types or bounds."""
    out: dict[str, Param] = {}
    for entry in entries:
        for p in entry.params:
            first = out.setdefault(p.name, p)
            if not first.same_kind(p):
                raise ValueError(f"{entry.name}: parameter {p.name!r} differs in type or bounds from the one other entries share")
    return out


def described(params: Iterable[Param]) -> str:
    """Parameters for tables and help: ``name=default``, ``name (required)``, and a bare
    ``name`` when its default is decided at run time (None)."""
    return ", ".join(_described(p) for p in params)


def _described(p: Param) -> str:
    if p.required:
        return f"{p.name} (required)"
    if p.default is None:
        return p.name
    return f"{p.name}={p.default:g}" if isinstance(p.default, float) else f"{p.name}={p.default}"
