"""A simulator slower than RLlib's sample timeout (the SMARL LES spin-up on a loaded machine):
``resources.sample_timeout_s`` reaches RLlib, an iteration that timed out says which key to
raise instead of blaming a restarting runner, and after Ctrl-C / SIGTERM the session lets go of
a runner busy in a long reset at once instead of waiting for it. One Ray session whose workers
register the slow stand-in environment (:func:`register`, their setup hook)."""

import time
from pathlib import Path

import gymnasium as gym
import pytest
import ray

from regrl.trainers import harness
from regrl.trainers.checkpoint import RESTARTING
from regrl.trainers.config import DEFAULT_SAMPLE_TIMEOUT_S, config_from_dict
from regrl.trainers.envs import ENVS, register_env
from regrl.trainers.rllib.algo import build_algorithm_config
from regrl.trainers.run import RLSession, empty_cause, runner_health
from tests.trainers.test_harness import FakeConfig, FakeDriver, FakeSession

ENV = "slow_reset_standin"
ROOT = Path(__file__).resolve().parents[2]


class SlowReset(gym.Wrapper):
    """CartPole whose first reset takes ``reset_s`` seconds (a simulator's spin-up)."""

    def __init__(self, reset_s: float = 0.0):
        super().__init__(gym.make("CartPole-v1"))
        self.reset_s, self.spun_up = reset_s, False

    def reset(self, **kwargs):
        if not self.spun_up:
            time.sleep(self.reset_s)
            self.spun_up = True
        return self.env.reset(**kwargs)


def register() -> None:
    """Register the stand-in (in this process, and as the Ray workers' setup hook)."""
    if ENV not in ENVS:
        register_env(ENV, "test stand-in: CartPole with a slow first reset", SlowReset)


@pytest.fixture(scope="module", autouse=True)
def registered():
    register()
    yield
    ENVS._entries.pop(ENV, None)  # keep `regrl list` and other modules' registries as they were


@pytest.fixture(scope="module")
def slow_ray():
    ray.init(
        address="local",
        include_dashboard=False,
        runtime_env={  # the workers import this module (from the checkout) to register it
            "env_vars": {"PYTHONPATH": str(ROOT)},
            "worker_process_setup_hook": f"{__name__}.register",
        },
    )
    yield
    ray.shutdown()


def config(tmp, reset_s, timeout="default", runners=1):
    resources = {"num_env_runners": runners, "torch_threads": 1}
    if timeout != "default":
        resources["sample_timeout_s"] = timeout
    return config_from_dict(
        {
            "name": "slow",
            "runs_root": str(tmp),
            "env": {"name": ENV, "kwargs": {"reset_s": reset_s}},
            "training": {
                "iterations": 2,
                "train_batch_size": 64,
                "minibatch_size": 64,
                "num_epochs": 1,
            },
            "resources": resources,
        }
    )


# ---- without Ray ----------------------------------------------------------------------------
def test_sample_timeout_reaches_rllib(tmp_path):
    assert build_algorithm_config(config(tmp_path, 0)).sample_timeout_s == DEFAULT_SAMPLE_TIMEOUT_S
    assert DEFAULT_SAMPLE_TIMEOUT_S > 60.0  # RLlib's own default is what was too short
    assert build_algorithm_config(config(tmp_path, 0, 7.5)).sample_timeout_s == 7.5
    assert build_algorithm_config(config(tmp_path, 0, None)).sample_timeout_s is None


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_bad_sample_timeout_is_one_error(tmp_path, bad):
    with pytest.raises(
        ValueError, match=r"resources.sample_timeout_s: must be|_s must be a number"
    ):
        config(tmp_path, 0, bad)


def test_empty_cause_tells_a_timeout_from_a_restart(tmp_path):
    r = config(tmp_path, 0, 60.0, runners=2).resources
    healthy = {"perf/env_runner_restarts": 0.0, "perf/healthy_env_runners": 2.0}
    assert "raise resources.sample_timeout_s" in empty_cause(r, 60.0, healthy, healthy)
    assert "= 60 s" in empty_cause(r, 61.0, healthy, healthy)
    assert empty_cause(r, 59.0, healthy, healthy) == RESTARTING  # ended before the timeout
    one_down = {**healthy, "perf/healthy_env_runners": 1.0}
    assert empty_cause(r, 60.0, healthy, one_down) == RESTARTING
    restarted = {**healthy, "perf/env_runner_restarts": 1.0}
    assert empty_cause(r, 60.0, healthy, restarted) == RESTARTING
    unbounded = config(tmp_path, 0, None, runners=2).resources
    assert empty_cause(unbounded, 1e6, healthy, healthy) == RESTARTING
    local = config(tmp_path, 0, 60.0, runners=0).resources  # no runner, no timeout
    assert empty_cause(local, 60.0, {}, {}) == RESTARTING


class AbortingSession(FakeSession):
    calls: list = []

    def abort(self):
        AbortingSession.calls.append("abort")

    def close(self):
        AbortingSession.calls.append("close")


def test_harness_aborts_the_session_before_closing_it_after_an_interrupt(tmp_path, monkeypatch):
    from tests.trainers.test_harness import EVENTS

    monkeypatch.setattr(
        FakeDriver, "build", lambda self, cfg, run_dir, choice: AbortingSession(cfg)
    )
    monkeypatch.setitem(EVENTS, "interrupt_at", 3)
    AbortingSession.calls = []
    with pytest.raises(KeyboardInterrupt):
        harness.train(FakeDriver(), FakeConfig(str(tmp_path)), progress=False)
    assert AbortingSession.calls == ["abort", "close"]
    harness.train(FakeDriver(), FakeConfig(str(tmp_path), name="whole"), progress=False)
    assert AbortingSession.calls[2:] == ["close"]  # a normal end stops the actors gracefully


# ---- one Ray session ------------------------------------------------------------------------
def test_a_reset_slower_than_the_timeout_names_the_key_and_abort_does_not_wait(
    slow_ray, tmp_path, capsys
):
    session = RLSession(config(tmp_path, reset_s=90.0, timeout=2.0), tmp_path)
    try:
        assert session.step(1) is None  # timed out: not counted
        line = capsys.readouterr().out
        assert "iteration 1 sampled 0 env steps (no env runner returned its sample" in line
        assert "resources.sample_timeout_s = 2 s" in line and RESTARTING not in line
        assert runner_health(session.algo)["perf/healthy_env_runners"] == 1.0  # alive, busy
        began = time.monotonic()
        session.abort()  # the runner is still inside its 90 s reset
    finally:
        session.close()
    assert time.monotonic() - began < 15.0  # algo.stop() alone would wait out the reset


def test_a_slow_reset_within_the_timeout_samples(slow_ray, tmp_path):
    session = RLSession(config(tmp_path, reset_s=3.0, timeout=None), tmp_path)
    try:
        metrics = session.step(1)
    finally:
        session.close()
    assert metrics is not None and metrics["env/env_steps"] >= 64
