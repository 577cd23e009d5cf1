"""The hardened YAML reader every regrl config goes through (experiment files, a run's saved
``config.yaml``, ``--set`` and ``--grid`` values, the results manifest).

Safe tags only; numbers as users write them (YAML 1.2 floats such as ``1e-3``, which PyYAML's
YAML 1.1 reads as strings); at most :data:`MAX_CONFIG_BYTES` of UTF-8 text,
:data:`MAX_YAML_NODES` values with aliases expanded and :data:`MAX_YAML_DEPTH` levels; every
problem is one :class:`ConfigError` line naming the file (issue 15). PyYAML only: no torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Tuple

import yaml

from regrl.trainers.checks import ConfigError, short_repr

MAX_CONFIG_BYTES = 1 << 20
"""A config file is text of at most 1 MiB (the shipped ones are under 3 KiB)."""
MAX_YAML_NODES = 100_000
"""Values of a document counted with every alias expanded: a 600-byte "billion laughs"
alias bomb expands to ~10^9 and is refused while measuring, in time linear in the file."""
MAX_YAML_DEPTH = 64
"""Nesting depth of a document, aliases expanded (deeper input would hit Python's recursion
limit in the parser's consumers)."""

# YAML 1.2 floats that YAML 1.1 (PyYAML) reads as strings: 1e-3, 5E-4, 1e3, +1e5, .5e3.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that reads numbers as users write them and bounds nesting depth while
    composing (every regrl YAML reader goes through :func:`load_yaml_text`)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _measure(node: yaml.Node, depth: int, memo: Dict[int, Tuple[int, int]]) -> Tuple[int, int]:
    """(values, height) of a composed node with aliases expanded; each distinct node is
    visited once (``memo``), so the cost is linear in the file, not in the expansion."""
    if depth > MAX_YAML_DEPTH:
        raise ConfigError(
            f"nested deeper than {MAX_YAML_DEPTH} levels (aliases expanded; a "
            "recursive alias never ends)"
        )
    if id(node) in memo:
        size, height = memo[id(node)]
        if depth + height - 1 > MAX_YAML_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels (aliases expanded)")
        return size, height
    children = (
        [c for pair in node.value for c in pair]
        if isinstance(node, yaml.MappingNode)
        else node.value
        if isinstance(node, yaml.SequenceNode)
        else []
    )
    size, height = 1, 1
    for child in children:
        s, h = _measure(child, depth + 1, memo)
        size, height = size + s, max(height, h + 1)
        if size > MAX_YAML_NODES:
            raise ConfigError(
                f"more than {MAX_YAML_NODES:,} values once aliases are expanded "
                "(an alias bomb?); write the values out"
            )
    memo[id(node)] = (size, height)
    return size, height


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: the problem and its line/column."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        context = f"{exc.context}: " if getattr(exc, "context", None) else ""
        return f"{context}{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def load_yaml_text(text: str, source: str) -> Any:
    """Parse one YAML document safely: no tags beyond YAML's own, YAML 1.2 numbers, at most
    MAX_YAML_NODES values with aliases expanded and MAX_YAML_DEPTH levels; every problem is a
    one-line ConfigError naming ``source``."""
    loader = None
    try:
        loader = _ConfigLoader(text)  # its reader already refuses control characters
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, 1, {})
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)[:300]}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


def decode_config_bytes(raw: bytes, source: str) -> str:
    """UTF-8 text of a config file (a BOM is allowed); binary or other encodings refused."""
    if b"\0" in raw:
        raise ConfigError(
            f"{source}: a binary file (NUL bytes), not a YAML config "
            "(UTF-16 text? save it as UTF-8)"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from None


def read_yaml(path: str | Path) -> Dict[str, Any]:
    """The top-level mapping of a config file (any kind, or a run's saved config.yaml)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{short_repr(str(path))}: no such config file")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; a config file "
                "is a short text (put data in data files)"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    data = load_yaml_text(decode_config_bytes(raw, str(path)), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise ConfigError(
            f"{path}: kind must be a name such as rlvr or offline, got "
            f"{type(kind).__name__} {short_repr(kind)}"
        )
    return data
