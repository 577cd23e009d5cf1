"""``--set KEY.PATH=VALUE``: the one definition of the flag and of how it edits a raw config.

``regrl train``, ``regrl validate``, ``regrl sweep`` and the domain tools' ``pretrain``
commands add the flag with :func:`add_set_flag`; every kind's driver applies it to the raw
mapping read from YAML with :func:`apply_overrides`, before its schema validates the result,
and ``regrl sweep`` sets its grid values with :func:`set_value`. A path part may be a list index (``objective.terms.0.coeff``);
a missing mapping on the way is created; values are read by the config YAML reader
(:func:`regrl.trainers.config_yaml.load_yaml_text`, numbers as in files).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from regrl.trainers.checks import ConfigError, short_repr

# config_yaml (PyYAML) is imported where a value is read, not at import: ``regrl --help`` builds
# the flag through add_set_flag and should not pay for a YAML parser.

SET_HELP = "override a config value (repeatable)"


def add_set_flag(parser) -> None:
    """The repeatable ``--set KEY.PATH=VALUE`` flag, collected into ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help=SET_HELP,
    )


def split_key(key: str, label: str) -> List[str]:
    """``a.b.c`` -> ``["a", "b", "c"]``; an empty part or a path deeper than a config can be
    is a ConfigError starting with ``label`` (``--set TEXT``)."""
    from regrl.trainers.config_yaml import MAX_YAML_DEPTH

    path = key.strip().split(".")
    if not all(part.strip() for part in path):
        raise ConfigError(
            f"{label}: the key path has an empty part; expected "
            "key.path=value, e.g. training.lr=1e-3"
        )
    if len(path) > MAX_YAML_DEPTH:
        raise ConfigError(f"{label}: a key path of more than {MAX_YAML_DEPTH} parts")
    return [p.strip() for p in path]


def parse_override(text: str) -> Tuple[List[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value read as YAML, numbers as in files)."""
    from regrl.trainers.config_yaml import load_yaml_text

    shown = short_repr(text, 120)
    if "=" not in text:
        raise ConfigError(f"--set {shown}: expected key.path=value")
    key, raw = text.split("=", 1)
    path = split_key(key, f"--set {shown}")
    value = load_yaml_text(raw, f"--set {shown}") if raw.strip() else ""
    return path, value


def apply_overrides(data: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``--set`` overrides to a raw config dict, in order; returns ``data``."""
    for text in overrides:
        path, value = parse_override(text)
        set_value(data, path, value, f"--set {short_repr(text, 120)}")
    return data


def set_value(data: Dict[str, Any], path: Sequence[str], value: Any, label: str) -> None:
    """Set ``path`` of a raw config mapping to an already typed ``value``, creating the
    mappings on the way; errors start with ``label`` (the flag and its text)."""
    node: Any = data
    for i, part in enumerate(path[:-1]):
        node = _child(node, part, path[i + 1], label, ".".join(path[:i]) or "the config")
    last, where = path[-1], ".".join(path[:-1])
    if isinstance(node, list):
        node[_list_index(node, last, label)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise _not_container(label, where, node)


def _is_index(part: str) -> bool:
    return part.isascii() and part.isdigit()


def _child(node: Any, part: str, nxt: str, label: str, where: str) -> Any:
    """The container at ``node[part]`` on the way down a path (created if absent)."""
    if isinstance(node, list):
        node = node[_list_index(node, part, label)]
    elif not isinstance(node, dict):
        raise _not_container(label, where, node)
    elif _is_index(nxt) and part not in node:
        raise ConfigError(
            f"{label}: {part!r} is not a list in the file; "
            f"set the whole list, e.g. --set '{part}=[{{name: policy}}]'"
        )
    else:
        node = node.setdefault(part, {})
    return node


def _not_container(label: str, where: str, node: Any) -> ConfigError:
    return ConfigError(
        f"{label}: {where} holds {type(node).__name__} {short_repr(node, 60)}, "
        "not a mapping or list"
    )


def _list_index(node: list, part: str, label: str) -> int:
    if not _is_index(part) or int(part) >= len(node):
        raise ConfigError(
            f"{label}: {short_repr(part, 40)} is not an index of a {len(node)}-item list"
        )
    return int(part)
