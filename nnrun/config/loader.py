"""Reading a config file: safe, plain YAML only, every problem a ConfigError with its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nnrun.errors import ConfigError

class _PlainLoader(yaml.SafeLoader):
    """Safe YAML restricted to what a config holds: mappings, lists, numbers, strings, booleans.

    No tag builds a Python object (``!!python/...`` is refused, never constructed), a key given
    twice in one mapping is an error rather than a silent override, and a malformed explicit
    scalar (``!!int many``) is a YAML error with its line, not a crash.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark, f"the key {key!r} is given twice (first on line {seen[key].line + 1})", key_node.start_mark
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception:  # noqa: BLE001 - PyYAML's scalar constructors raise bare ValueError & co
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid {_tag(node.tag)}", node.start_mark
            ) from None


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None, None, f"the tag {_tag(node.tag)} is not allowed: a config holds plain YAML (mappings, lists, numbers, strings, true/false)", node.start_mark
    )


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)  # 2024-01-01 stays the text the user wrote


_PlainLoader.add_constructor(None, _refuse_tag)
for _t in ("binary", "set", "omap", "pairs"):
    _PlainLoader.add_constructor(f"tag:yaml.org,2002:{_t}", _refuse_tag)
_PlainLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def yaml_problem(text: str) -> tuple[Any, str | None]:
    """(data, None) for plain YAML, else (None, "line L, column C: problem")."""
    try:
        return _string_keys(yaml.load(text, Loader=_PlainLoader)), None  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return None, at + (getattr(exc, "problem", None) or str(exc).splitlines()[0])
    except Exception as exc:  # noqa: BLE001 - whatever PyYAML raises, the user's text is at fault
        return None, str(exc)


def parse_yaml(text: str, where: str) -> Any:
    """``text`` as plain YAML; a ConfigError naming ``where``, the line and the problem otherwise."""
    data, problem = yaml_problem(text)
    if problem is not None:
        at, sep, rest = problem.partition(": ") if problem.startswith("line ") else ("", "", problem)
        raise ConfigError(f"{where}: {at + ': ' if at else ''}not valid YAML: {rest}")
    return data


def _string_keys(value: Any) -> Any:
    """Mapping keys as text: YAML reads ``1:`` or ``true:`` as numbers and booleans."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else str(k)): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def read_yaml(path: Path) -> dict:
    """A config file's top-level mapping, loaded safely (no tags that build objects)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if "=" in path.name and "/" not in str(path):  # `nnrun sweep training.epochs=500`
            raise ConfigError(f"{path}: no such config file; to change a config key write --set {path} (overrides are options, not arguments)") from None
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; expected a YAML config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot be read as text (UTF-8); expected a YAML config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping of config keys (name:, dataset:, model:, …). `nnrun init` writes examples to start from")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (name:, dataset:, model:, …), got a {type(data).__name__}")
    return data

