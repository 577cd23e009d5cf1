"""``objective:``, the one objective section of kind rl (RLlib learner) and kind rlvr (token
learner): how advantages are estimated and the loss terms of
:mod:`regrl.agents.objectives.terms` that the learner sums.

:class:`ObjectiveConfig` is kind rl's and checks the term list against what a learner backend
can compute, by the terms' capability flags (never by name): a kind whose learner has less
(kind rlvr: no critic, no candidate actions, exactly one surrogate) subclasses it, narrowing
``advantages``, the default terms and the class attributes ``exactly_one_surrogate``,
``has_critic`` and ``has_candidates`` (:class:`regrl.trainers.rlvr.config.RLVRObjective`).
A new term needs no change here: it is registered in ``agents/objectives/terms.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Optional, Tuple

from regrl.agents.objectives.terms import TERMS
from regrl.trainers.checks import require as _require
from regrl.trainers.config_kernel import NamedSpec, named_list


@dataclass(frozen=True)
class TermSpec(NamedSpec):
    """One objective term: ``{name: ..., <params>}`` of the term registry."""


def terms_field(*defaults: str) -> Any:
    """The ``terms`` field of an objective: a named list of the term registry whose default is
    ``defaults``, each with its default parameters."""
    return field(
        default_factory=lambda: tuple(TermSpec(n, TERMS.get(n).params_cls()) for n in defaults),
        metadata=named_list(TERMS, lambda t: t.params_cls, TermSpec, "term", "policy"),
    )


@dataclass(frozen=True)
class AdvantageConfig:
    estimator: Literal["gae", "group", "candidates"] = "gae"
    """``gae`` (Schulman et al. 2015), ``group`` (GRPO: episode return vs its group) or
    ``candidates`` (RIFT: each candidate's simulated return vs the other candidates of its
    state, population std, eps 1e-5; needs the ``candidate_policy`` term)."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda."""
    group_std: Optional[Literal["unbiased", "population"]] = "unbiased"
    """Std used by ``group``: unbiased (verl), population (RIFT), null (Dr.GRPO)."""
    normalize: bool = True
    """Standardise advantages over the train batch (stock RLlib PPO does; not for ``group``)."""

    def __post_init__(self) -> None:
        _require(0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}")
        _require(0.0 <= self.lam <= 1.0, f"lam must be in [0, 1], got {self.lam}")


@dataclass(frozen=True)
class ObjectiveConfig:
    advantages: AdvantageConfig = field(default_factory=AdvantageConfig)
    """How advantages are estimated (a learner connector)."""
    terms: Tuple[TermSpec, ...] = terms_field("policy", "value", "entropy")
    """Loss terms summed by the learner, each ``{name: ..., <params>}``."""

    backend: ClassVar[str] = "rl"
    """The kind whose learner computes the terms (named in errors)."""
    exactly_one_surrogate: ClassVar[bool] = False
    """True: exactly one policy surrogate; False: at most one."""
    has_critic: ClassVar[bool] = True
    """The learner has a value head (terms flagged ``needs_values``)."""
    has_candidates: ClassVar[bool] = True
    """The learner sees candidate actions (terms flagged ``needs_candidates``)."""

    def __post_init__(self) -> None:
        names = [t.name for t in self.terms]
        _require(len(names) == len(set(names)), f"a term is listed twice: {names}")
        surrogates = [n for n in names if TERMS.get(n).is_surrogate]
        if self.exactly_one_surrogate:
            _require(
                len(surrogates) == 1,
                f"list exactly one policy surrogate (policy or lp_reg), got {surrogates}",
            )
        else:
            _require(
                len(surrogates) <= 1,
                f"terms {surrogates} are both policy surrogates; list only one of them",
            )
        unsupported = [
            n
            for n in names
            if (TERMS.get(n).needs_values and not self.has_critic)
            or (TERMS.get(n).needs_candidates and not self.has_candidates)
        ]
        _require(
            not unsupported,
            f"terms {unsupported} need a critic or candidate actions, "
            f"which kind: {self.backend} does not have",
        )
        if self.has_candidates:
            self._check_candidates(names)

    def _check_candidates(self, names) -> None:
        """Candidate terms and the ``candidates`` advantage estimator go together."""
        by_candidate = [n for n in names if TERMS.get(n).needs_candidates]
        _require(
            bool(by_candidate) == (self.advantages.estimator == "candidates"),
            f"terms {by_candidate} need advantages.estimator: candidates"
            if by_candidate
            else "advantages.estimator: candidates needs the candidate_policy term",
        )
