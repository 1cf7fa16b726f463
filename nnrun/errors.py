"""nnrun's own errors: one base the command line turns into a message and exit code 2.

Library code raises a subclass with the fix in its message; only ``cli.py`` prints it.
``hint`` and ``show`` are the two phrases those messages share.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Iterable


class NnrunError(ValueError):
    """Input nnrun cannot use (a config, a data file, a results directory, an option); the
    message names where it is and how to fix it. The command exits with ``exit_code``.
    A ValueError, as each of its subclasses was before they shared this base."""

    exit_code = 2


class ConfigError(NnrunError):
    """A config the user wrote cannot be used; the message says where and how to fix it."""


class UsageError(NnrunError):
    """A command-line option or argument that cannot be used as given."""


def hint(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``word``, or nothing."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show(value: Any) -> str:
    """A value as the user would write it: JSON where possible (null, true, "text", NaN)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
