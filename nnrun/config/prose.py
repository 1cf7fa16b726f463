"""Validation errors in words: one line per offending key, naming the key, what it must be,
the value given and, for a misspelt key, the key meant."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import ValidationError

from nnrun.config.schema import SCHEMA_PATHS, InlineVariant, Strict
from nnrun.errors import hint, show

def _loc(loc: tuple) -> str:
    """pydantic's error location as the user writes the key: ``model.hidden[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or part == "[key]" or str(part).startswith(("function-", "constrained-", "literal[", "union[", "list[", "json-")):
            continue  # which member of a union failed, not a key the user wrote
        else:
            out += ("." if out else "") + str(part)
    return out


_UNION_TAGS = {"str", "int", "float", "bool", "list[...]", *(m.__name__ for m in Strict.__subclasses__())}


def unknown_key_hint(path: str) -> str:
    parent, _, key = path.rpartition(".")
    if re.fullmatch(r"variants\[\d+\]", parent):
        siblings = list(InlineVariant.model_fields)
    else:
        siblings = [p.rpartition(".")[2] for p in SCHEMA_PATHS if p.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {(parent + '.' if parent else '') + close[0]!r}?"
    elsewhere = [p for p in SCHEMA_PATHS if p.rpartition(".")[2] == key]
    if elsewhere:
        return f"; did you mean {elsewhere[0]!r}?"
    if not siblings:
        return f"; {parent} takes no keys of its own"
    return f"; the keys here are {', '.join(siblings)}"


def format_errors(exc: ValidationError, source: str) -> str:
    """One line per offending key: ``source: key: must be <what>, got <value>``.

    A union (``batch_size: 'full'`` or an integer, ``seeds``: a count or a list) reports one
    error per member; they are merged into one "must be A or B" line for the key.
    """
    entries: list[tuple[str, str | None, str, Any]] = []  # (path, expected, text, input)
    for err in exc.errors(include_url=False):
        path = _loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        got = err.get("input")
        expected = _expected(err)
        if err["type"] == "extra_forbidden":
            text = f"{path}: unknown key{unknown_key_hint(path)}"
        elif err["type"] == "missing":
            text = f"{path}: is required"
        elif err["type"] in ("value_error", "assertion_error"):
            text = msg if msg.startswith(_OWN_PREFIXES) or not path else f"{path}: {msg}"
        elif expected is not None:
            text = ""  # built below, once the union members of this key are merged
        else:
            text = f"{path or 'config'}: {msg[0].lower() + msg[1:] if msg else 'invalid'}, got {show(got)}"
        entries.append((path, expected, text, got))
    # A union member that failed on its type is noise when another member got further in.
    paths = [p for p, *_ in entries]
    entries = [
        e for e in entries
        if not (e[1] in _TYPE_WORDS and any(q != e[0] and q.startswith((e[0] + ".", e[0] + "[")) for q in paths))
    ]
    lines: list[str] = []
    merged: dict[str, int] = {}
    for path, expected, text, got in entries:
        if expected is not None and not text:
            if path in merged:
                i = merged[path]
                lines[i] = lines[i].replace(", got ", f" or {expected}, got ", 1)
                continue
            text = f"{path or 'config'}: must be {expected}, got {show(got)}"
            if isinstance(got, str) and expected.startswith("one of"):
                text += hint(got, [o.strip(" '") for o in expected.removeprefix("one of ").replace(" or ", ", ").split(",")])
            merged[path] = len(lines)
        if text not in lines:
            lines.append(text)
    return f"{source}: " + ("\n  ".join(lines) if len(lines) > 1 else lines[0])


# Messages raised by the validators above already start with their key path.
_OWN_PREFIXES = ("study.", "dataset.", "model.", "training.", "convergence.", "variants[", "variants:", "seeds:", "sweep.", "learning_rates:", "logging.", "name:")
_TYPE_WORDS = ("a string", "a mapping", "a list", "an integer", "a number", "true or false")
# What a pattern-checked string may hold, in words.
_PATTERN_WORDS = {
    r"^[A-Za-z0-9_-]+$": "letters, digits, '-' and '_' only (it names the folder results/<name>/)",
    r"^[A-Za-z0-9_.+-]+$": "letters, digits and '.', '_', '+', '-' only",
}


def _expected(err: dict) -> str | None:
    """What the key must be, in words, for pydantic's usual complaints; None for the rest."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": "greater than", "greater_than_equal": "greater than or equal to", "less_than": "less than", "less_than_equal": "less than or equal to"}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"{op} {bound:g}" if isinstance(bound, float) else f"{op} {bound}"
    if kind == "finite_number":
        return "a finite number"
    if kind in ("int_parsing", "int_type", "int_from_float", "int_parsing_size"):
        return "an integer"
    if kind in ("float_parsing", "float_type"):
        return "a number"
    if kind in ("bool_parsing", "bool_type"):
        return "true or false"
    if kind in ("string_type", "string_unicode"):
        return "a string"
    if kind in ("list_type", "tuple_type", "iterable_type"):
        return "a list"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return "a mapping"
    if kind == "literal_error":
        options = str(ctx.get("expected", ""))
        return f"one of {options}" if " or " in options else options
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"a list of at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        n = ctx.get("max_length")
        return f"a list of at most {n} items"
    if kind == "string_too_short":
        return "a non-empty string"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return _PATTERN_WORDS.get(str(ctx.get("pattern")), f"a string matching {ctx.get('pattern')}")
    return None


