"""Registries filled by modules named in a list: how the shared core finds domain code.

A core module (kinds, environments, evaluators, RLlib module specs) never imports a domain
module; it names the modules that register into its table, and the table imports them by name
on its first lookup (like ``DOMAIN_CLIS`` in :mod:`regrl.trainers.cli`). So the import graph has no
edge from the core to a domain (import-linter checks it, ``.importlinter``), and a process that
never looks a name up imports none of them.
"""

from __future__ import annotations

import importlib
from typing import Any, Iterator, Sequence, Tuple

from regrl.agents.registry import Entry, Registry


class PluginRegistry(Registry):
    """A :class:`Registry` that imports ``modules`` (which register into it) before the first
    lookup; ``register`` itself never imports them."""

    def __init__(self, kind: str, modules: Sequence[str]):
        super().__init__(kind)
        self.modules, self.loaded = tuple(modules), False

    def load(self) -> None:
        """Import the plugin modules once (the flag first: a plugin may look names up while
        it is being imported, and must then see the table as it is, not recurse)."""
        if not self.loaded:
            self.loaded = True
            for module in self.modules:
                importlib.import_module(module)

    def get(self, name: str) -> Any:
        self.load()
        return super().get(name)

    def unknown_message(self, name: str) -> str:
        self.load()
        return super().unknown_message(name)

    def __contains__(self, name: object) -> bool:
        self.load()
        return super().__contains__(name)

    def __iter__(self) -> Iterator[Entry]:
        self.load()
        return super().__iter__()

    def names(self) -> Tuple[str, ...]:
        self.load()
        return super().names()


# The domain packages. Each one registers what it adds to the core (environments, RLModule
# specs, evaluators, experiment kinds) in its ``plugin`` module and adds its CLI verbs in its
# ``cli`` module; adding a domain is one package and one name here.
DOMAINS = ("regrl.trainers.turbulence", "regrl.trainers.traffic", "regrl.trainers.rlvr")
DOMAIN_PLUGINS = tuple(f"{d}.plugin" for d in DOMAINS)
DOMAIN_CLIS = tuple(f"{d}.cli" for d in DOMAINS)
