"""The objective registry: every public loss, advantage and KL function of ``regrl.agents.objectives``."""

from __future__ import annotations

from typing import Any

from regrl.agents.registry import Registry

OBJECTIVES = Registry("objective")


def get_objective(name: str) -> Any:
    """Return the objective function registered as ``name``.

    An unknown name raises :class:`regrl.agents.registry.UnknownNameError` (a ``KeyError``) whose
    message lists every known objective and the nearest match.
    """
    return OBJECTIVES.get(name)
