"""Name -> object registries (verl-style ``@register``), shared by every plugin family."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Tuple


class UnknownNameError(KeyError):
    """Raised by :meth:`Registry.get` for a name that was never registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    description: str


class Registry:
    """A named table of objects, each with a one-line description.

    ``@reg.register("name", "what it does")`` adds an object; ``reg.get("name")`` returns it,
    and an unknown name raises :class:`UnknownNameError` listing the known names and the
    nearest one.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Entry] = {}

    def register(self, name: str, description: str = "") -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            doc = description or (obj.__doc__ or "").strip().splitlines()[0:1]
            desc = doc if isinstance(doc, str) else (doc[0] if doc else "")
            self._entries[name] = Entry(name, obj, desc)
            return obj

        return deco

    def get(self, name: str) -> Any:
        try:
            return self._entries[name].obj
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        near = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> Tuple[str, ...]:
        return tuple(sorted(self._entries))
