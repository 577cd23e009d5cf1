"""A longer LES time step that keeps SMARL's decision interval in time (issue 21 §5's cost):
the steps-per-decision rule, the CFL check of ``les_from_reference``, that ``rollout`` steps
with the time step it is given, and the precision / time-step benchmark's variant parser."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from regrl.envs.turbulence.reference import (
    STEPS_PER_DECISION,
    les_dt,
    les_from_reference,
    load_reference,
    steps_per_decision,
)
from regrl.trainers.turbulence.smarl import rollout
from tests.benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def ref():
    return load_reference()


def test_steps_per_decision_keeps_the_interval_in_time():
    assert STEPS_PER_DECISION == 10
    assert steps_per_decision(5e-4, 5e-4) == 10
    assert steps_per_decision(1e-3, 5e-4) == 5
    assert steps_per_decision(2.5e-3, 5e-4) == 2
    assert steps_per_decision(5e-3, 5e-4) == 1
    for bad in (3e-3, 1e-2, 0.0, -1e-3, math.nan, math.inf):
        with pytest.raises(ValueError, match="must divide the decision interval 0.005"):
            steps_per_decision(bad, 5e-4)


def test_les_from_reference_takes_a_time_step_within_the_cfl_bound(ref):
    assert les_from_reference(ref, 1).dt == les_dt(ref.provenance["spec"]) == 5e-4
    sim = les_from_reference(ref, 2, torch.float32, dt=2.5e-3)
    assert sim.dt == 2.5e-3 and sim.dtype == torch.float32 and sim.batch == 2
    bound = 2 * math.pi / ref.n_les / 10.0  # dx / |u| at VELOCITY_SCALE 10: 9.8e-3 on 64²
    with pytest.raises(ValueError, match="CFL bound"):
        les_from_reference(ref, 1, dt=1.01 * bound)
    for bad in (0.0, -1e-3, math.nan):
        with pytest.raises(ValueError, match="LES dt must be in"):
            les_from_reference(ref, 1, dt=bad)


def test_rollout_steps_with_the_time_step_it_is_given(ref):
    """A NaN policy blows up at its first decision, so ``diverged_at`` is the time of one
    decision: steps_per_action × dt (rounded to 1e-3). Ignoring ``dt`` (stepping 5e-4) would
    report 1e-3."""
    nan_policy = lambda obs: np.full(obs.shape[:2], np.nan)  # noqa: E731
    kwargs = dict(closure="smagorinsky", policy=nan_policy, seeds=2, time_units=0.05, spinup=0.0)
    row = rollout(ref, dt=2.5e-3, steps_per_action=2, **kwargs)
    assert row["diverged_at"] == [0.005, 0.005]
    row = rollout(ref, steps_per_action=2, **kwargs)
    assert row["diverged_at"] == [0.001, 0.001]


def test_a_longer_time_step_gives_nearly_the_same_statistics(ref):
    """Over 0.2 time units of two LES the constant closure's spectrum error at dt 1e-3 (5 steps
    per decision) is within 2e-3 of the reference's dt, but not bit-identical (it did step)."""
    kwargs = dict(closure="smagorinsky", coeff=0.17**2, seeds=2, time_units=0.2, spinup=0.05)
    base = rollout(ref, **kwargs)
    longer = rollout(ref, dt=1e-3, steps_per_action=5, **kwargs)
    diff = longer["enstrophy_spectrum_error"] - base["enstrophy_spectrum_error"]
    assert diff != 0.0 and abs(diff) < 2e-3
    assert longer["simulations"] == base["simulations"] == 2 and longer["diverged"] == 0


def test_variant_parser_puts_the_base_first_and_refuses_bad_variants():
    with benchmark_module("turbulence_float32") as module:
        variants = module.parse_variants("float32,float64@1e-3,float32@2.5e-3", 5e-4)
        assert [(v[0], v[2], v[3]) for v in variants] == [
            ("float64, dt 0.0005", 5e-4, 10),
            ("float32, dt 0.0005", 5e-4, 10),
            ("float64, dt 0.001", 1e-3, 5),
            ("float32, dt 0.0025", 2.5e-3, 2),
        ]
        assert variants[1][1] is torch.float32 and variants[2][1] is torch.float64
        for bad, message in (
            ("float16", "precision must be one of"),
            ("float64@x", "could not convert"),
            ("float64@3e-3", "must divide the decision interval"),
            ("float64", "listed twice"),
            ("float32,float32@5e-4", "listed twice"),
        ):
            with pytest.raises(SystemExit, match=message):
                module.parse_variants(bad, 5e-4)


def test_env_and_eval_keep_the_decision_interval_when_only_dt_is_set(ref):
    """TurbulenceEnv without ``steps_per_action`` takes SMARL's interval in steps of its own
    dt; ``regrl eval`` resolves it the same way from the run's env kwargs."""
    from regrl.envs.turbulence.env import TurbulenceEnv, resolve_steps_per_action

    spec = ref.provenance["spec"]
    assert resolve_steps_per_action(None, None, spec) == 10
    assert resolve_steps_per_action(None, 2.5e-3, spec) == 2
    assert resolve_steps_per_action(7, 2.5e-3, spec) == 7  # as given
    with pytest.raises(ValueError, match="or set steps_per_action"):
        resolve_steps_per_action(None, 3e-3, spec)
    env = TurbulenceEnv(dt=1e-3)
    assert env.steps_per_action == 5 and env.sim.dt == 1e-3
    assert TurbulenceEnv().steps_per_action == 10
    assert TurbulenceEnv(dt=1e-3, steps_per_action=3).steps_per_action == 3


def test_eval_rolls_out_with_the_env_time_step(ref, monkeypatch):
    """``evaluate_run`` hands the env's dt and resolved decision interval to every rollout."""
    from types import SimpleNamespace

    import regrl.trainers.turbulence.smarl as smarl

    seen = []

    def fake_compare(ref_, policy, closure, **kw):
        seen.append(kw)
        raise RuntimeError("stop after the arguments")

    monkeypatch.setattr(smarl, "compare", fake_compare)
    monkeypatch.setattr(smarl, "module_policy", lambda module, rng: None)
    cfg = SimpleNamespace(
        env=SimpleNamespace(kwargs={"dt": 2.5e-3}), eval=SimpleNamespace(kwargs={})
    )
    with pytest.raises(RuntimeError, match="stop after"):
        smarl.evaluate_run(run_dir=Path("."), cfg=cfg, ckpt=None, episodes=2, module=object())
    assert seen[0]["dt"] == 2.5e-3 and seen[0]["steps_per_action"] == 2
