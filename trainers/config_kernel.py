"""The config kernel: a plain mapping (read from YAML) <-> a frozen config dataclass.

:func:`parse` builds and validates any frozen dataclass from a dict: unknown keys name the
nearest valid key (or the key that replaced an old spelling, :data:`RENAMED_KEYS`), wrong types
and out-of-range numbers name their dotted path, and the ``ValueError`` of a dataclass's
``__post_init__`` (:func:`regrl.trainers.checks.require`) becomes a one-line
:class:`ConfigError` naming the source. :func:`to_dict` is the inverse. A field marked with
:func:`named_list` is a list of ``{name: ..., <params>}`` entries of a registry (objective
terms, offline plugins). Standard library only: no YAML, no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Literal, Tuple

from regrl.trainers.checks import MAX_INT, ConfigError, short_repr

__all__ = [
    "NAMED_LIST",
    "RENAMED_KEYS",
    "ConfigError",
    "NamedList",
    "NamedSpec",
    "key_name",
    "named_list",
    "parse",
    "parse_named_entry",
    "to_dict",
]


@dataclass(frozen=True)
class NamedSpec:
    """One entry of a named list: YAML ``{name: ..., <params>}``."""

    name: str
    """The entry's name in its registry (``regrl list`` shows them)."""
    params: Any
    """The entry's own typed parameters (a frozen dataclass from the registry)."""


@dataclass(frozen=True)
class NamedList:
    """Field marker (``field(metadata=named_list(...))``): the field is a list of
    ``{name: ..., <params>}`` entries of ``registry``, parsed into ``spec`` objects; the generic
    parser needs no special case for it."""

    registry: Any
    """A registry with ``in``, ``get(name)`` and ``unknown_message(name)``."""
    params_cls_of: Callable[[Any], type]
    """The params dataclass of a registry entry."""
    spec: type
    """The :class:`NamedSpec` subclass built for each entry."""
    noun: str
    """What an entry is called in errors (``term``, ``plugin``)."""
    example: str
    """A valid name shown in the error for a non-list value."""
    non_empty: bool = True
    """Refuse an empty (or null) list."""
    name_in_path: bool = False
    """Parameter errors name ``field[i] (name)`` rather than ``field[i]``."""


def named_list(registry, params_cls_of, spec, noun, example, **kw) -> Dict[str, NamedList]:
    """``metadata`` of a named-list field (see :class:`NamedList`)."""
    return {NAMED_LIST: NamedList(registry, params_cls_of, spec, noun, example, **kw)}


NAMED_LIST = "regrl_named_list"
"""The metadata key of :func:`named_list`."""


def key_name(key: Any) -> str:
    """A mapping key as it reads in a dotted path (short names plain, anything else quoted)."""
    return (
        key if isinstance(key, str) and key.isidentifier() and len(key) <= 64 else short_repr(key)
    )


def _fail(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


def _key(key: Any) -> str:
    """A mapping key as a path part of an error message (long or odd keys shortened)."""
    text = str(key) if isinstance(key, (str, int)) else short_repr(key, 60)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists/dicts/dataclasses."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is Literal:
        if value not in args:  # a tuple compares with ==: lists/dicts are fine here
            near = difflib.get_close_matches(str(value)[:100], [str(a) for a in args], n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise _fail(where, f"must be one of {list(args)}, got {short_repr(value)}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (tuple, list, typing.Tuple, typing.List):
        if not isinstance(value, (list, tuple)):
            raise _fail(where, f"expected a list, got {type(value).__name__} {short_repr(value)}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise _fail(
                where, f"expected a mapping, got {type(value).__name__} {short_repr(value)}"
            )
        return (
            {
                _coerce(k, args[0], f"{where} key"): _coerce(v, args[1], f"{where}.{_key(k)}")
                for k, v in value.items()
            }
            if args
            else dict(value)
        )
    if tp in (int, float):
        return _number(value, tp, where)
    if not isinstance(value, tp):
        raise _fail(
            where, f"expected {_type_name(tp)}, got {type(value).__name__} {short_repr(value)}"
        )
    return value


def _number(value: Any, tp: type, where: str) -> Any:
    """An int or float field: finite, ints within MAX_INT; an integral float such as ``1e3``
    is accepted for an int field, a fractional one is refused (issue 15)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(
            where, f"expected {tp.__name__}, got {type(value).__name__} {short_repr(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, f"must be a finite number, got {value}")
    if tp is float:
        if abs(value) > 1e300:  # float(int) overflows, and nothing sensible is this large
            raise _fail(where, f"expected a float, got an integer of {len(str(value))} digits")
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise _fail(where, f"expected int, got float {value!r}")
    if abs(value) > MAX_INT:
        raise _fail(where, f"must be at most {MAX_INT:,} in magnitude, got {value:.3g}")
    return int(value)


def _build(cls: type, data: Any, where: str) -> Any:
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(where, f"expected a mapping, got {type(data).__name__} {short_repr(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    known = list(fields)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{_key(key)}" if where else _key(key)
        if key not in known:
            raise _fail(path, f"unknown key {short_repr(key)}{_unknown_hint(key, known)}")
        marker = fields[key].metadata.get(NAMED_LIST)
        if marker is not None:
            kwargs[key] = _build_named_list(value, path, marker)
        else:
            kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise _fail(where or "config", str(exc)) from None


_GPU_KEY = "resources.num_gpus_per_learner (0 = CPU, 1 = one GPU per learner; the device follows)"
RENAMED_KEYS = {
    "use_gpu": _GPU_KEY,
    "learner_device": _GPU_KEY,
    "learner_num_gpus": _GPU_KEY,
    "device": _GPU_KEY,
    "torch_threads": "resources.torch_threads",
}
"""Old spellings of the shared fields -> the key that replaced them (issue 12 §3)."""


def _unknown_hint(key: Any, known: List[str]) -> str:
    if isinstance(key, str) and key in RENAMED_KEYS:
        return f"; it is now spelt {RENAMED_KEYS[key]}"
    near = difflib.get_close_matches(str(key)[:100], known, n=1)
    return f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(known)}"


def _build_named_list(value: Any, where: str, spec: NamedList) -> Tuple[NamedSpec, ...]:
    """A field marked with :func:`named_list`: ``[{name: ..., <params>}, ...]``."""
    if value is None and not spec.non_empty:
        return ()
    if not isinstance(value, (list, tuple)) or (spec.non_empty and not value):
        size = "a non-empty list" if spec.non_empty else "a list"
        raise _fail(where, f"expected {size} of {spec.noun}s like [{{name: {spec.example}}}]")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, spec.spec):
            out.append(item)
            continue
        name, params = parse_named_entry(
            item,
            f"{where}[{i}]",
            spec.registry,
            spec.params_cls_of,
            spec.noun,
            name_in_path=spec.name_in_path,
        )
        out.append(spec.spec(name, params))
    return tuple(out)


def parse_named_entry(
    item: Any, path: str, registry, params_cls_of, noun: str, name_in_path: bool = False
):
    """``{name: ..., **params}`` of a registry (objective terms, offline plugins) ->
    (name, validated params dataclass); errors name ``path`` (with ``(name)`` appended for
    parameter errors when ``name_in_path``) and the nearest known name."""
    if not isinstance(item, dict) or "name" not in item:
        raise _fail(path, f"a {noun} is a mapping with a 'name' key, got {short_repr(item)}")
    params = dict(item)
    name = params.pop("name")
    if not isinstance(name, str) or name not in registry:
        shown = name if isinstance(name, str) and len(name) <= 100 else short_repr(name, 100)
        raise _fail(f"{path}.name", registry.unknown_message(shown))
    where = f"{path} ({name})" if name_in_path else path
    return name, _build(params_cls_of(registry.get(name)), params, where)


def parse(cls: type, data: Dict[str, Any], source: str = "<dict>") -> Any:
    """Build and validate any frozen config dataclass ``cls`` from a plain dict: unknown keys,
    wrong types and ``__post_init__`` ValueErrors become a ConfigError naming ``source``."""
    try:
        return _build(cls, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def to_dict(cfg: Any) -> Any:
    """Plain YAML-able dict of a config (terms back to ``{name: ..., **params}``)."""
    if isinstance(cfg, NamedSpec):
        return {"name": cfg.name, **to_dict(cfg.params)}
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg
