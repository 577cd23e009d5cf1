"""SIGTERM (Kubernetes, Slurm, spot preemption, ``ray job stop``) is handled like Ctrl-C: the
running iteration finishes within the grace period, it is checkpointed, one line says so and
the CLI exits 143; ``--resume`` continues. First on the harness's in-memory session, then a
real ``regrl train`` of CartPole PPO in a subprocess."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import yaml

from regrl.trainers import harness
from regrl.trainers.checkpoint import latest_checkpoint, read_state
from regrl.trainers.stop_signal import (
    EXIT_TERMINATED,
    GRACE_ENV,
    Terminated,
    deferred,
    grace_seconds,
    relay,
    sigterm_as_interrupt,
)
from tests.trainers.sigterm_helpers import CLI, ENV, ROOT, run_errors, sigterm_when_ready
from tests.trainers.test_harness import FakeConfig, FakeDriver, FakeSession, _iters, _steps


@pytest.fixture
def sigterm_in_step(monkeypatch):
    """``arm(i, sleep)``: iteration ``i`` receives SIGTERM, then works ``sleep`` seconds more."""
    original = FakeSession.step

    def arm(at, sleep=0.0):
        def step(self, i):
            if i == at:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(sleep)
            return original(self, i)

        monkeypatch.setattr(FakeSession, "step", step)

    return arm


def _run(tmp_path):
    with pytest.raises(Terminated):
        harness.train(FakeDriver(), FakeConfig(str(tmp_path)), progress=False)
    (run_dir,) = (tmp_path / "fake").iterdir()
    return run_dir


def test_sigterm_finishes_the_running_iteration_and_saves_it(tmp_path, sigterm_in_step, capsys):
    sigterm_in_step(3)
    before = signal.getsignal(signal.SIGTERM)  # Ray's handler if an earlier test ran ray.init
    run_dir = _run(tmp_path)
    assert _iters(run_dir) == [2, 3] and _steps(run_dir) == [1, 2, 3]  # 3 finished, then saved
    out = capsys.readouterr()
    assert "SIGTERM: checkpointing after the running iteration" in out.err
    assert (
        f"stopped by SIGTERM after iteration 3 (saved); resume with: regrl train --resume {run_dir}"
        in out.out
    )
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
    done = harness.train(FakeDriver(), resume=run_dir, progress=False)
    assert done.metrics == {"x": 15.0} and _steps(run_dir) == [1, 2, 3, 4, 5]


def test_sigterm_after_the_grace_period_interrupts_like_ctrl_c(
    tmp_path, sigterm_in_step, monkeypatch
):
    monkeypatch.setenv(GRACE_ENV, "0.2")
    sigterm_in_step(3, sleep=30.0)  # an iteration far longer than the grace period
    run_dir = _run(tmp_path)
    # the 30 s iteration was cut short: had regrl waited for it, step 3 would be recorded
    assert _iters(run_dir) == [2] and _steps(run_dir) == [1, 2]  # 3 never completed


def test_sigterm_turned_into_a_keyboard_interrupt_is_still_a_sigterm(
    tmp_path, sigterm_in_step, monkeypatch, capsys
):
    """Ray's blocking calls re-raise our handler's exception as KeyboardInterrupt (seen when the
    grace period ran out inside RLlib's sampling: `interrupted`, exit 130)."""
    monkeypatch.setenv(GRACE_ENV, "0.2")
    original = FakeSession.step

    def step(self, i):
        if i == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            try:
                time.sleep(30.0)
            except Terminated:
                raise KeyboardInterrupt from None  # what ray.wait does with it
        return original(self, i)

    monkeypatch.setattr(FakeSession, "step", step)
    run_dir = _run(tmp_path)  # raises Terminated
    assert "stopped by SIGTERM after iteration 2 (saved)" in capsys.readouterr().out
    assert _iters(run_dir) == [2]


def test_grace_zero_interrupts_at_once(tmp_path, sigterm_in_step, monkeypatch):
    monkeypatch.setenv(GRACE_ENV, "0")
    sigterm_in_step(4, sleep=30.0)
    run_dir = _run(tmp_path)
    assert _iters(run_dir) == [2, 3]  # 3 was not due by the cadence: saved by the SIGTERM


def test_the_loop_alone_handles_sigterm_too(tmp_path, sigterm_in_step):
    """harness.run without harness.train: how the offline kind's local fit runs it."""
    sigterm_in_step(3)
    cfg = FakeConfig(str(tmp_path))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("{}")  # what the run's logger quotes
    with pytest.raises(Terminated):
        harness.run(FakeSession(cfg), tmp_path / "r", None, cfg.checkpoint, progress=False)
    assert _iters(tmp_path / "r") == [2, 3]


def test_sigterm_before_the_first_iteration_says_nothing_was_saved(
    tmp_path, sigterm_in_step, monkeypatch, capsys
):
    """Iteration 1 interrupted (grace 0): no checkpoint exists, and the line must not say
    '(saved)' as it did."""
    monkeypatch.setenv(GRACE_ENV, "0")
    sigterm_in_step(1, sleep=30.0)
    run_dir = _run(tmp_path)
    assert _iters(run_dir) == []
    out = capsys.readouterr().out
    assert (
        "stopped by SIGTERM before the first iteration finished: nothing to save; "
        f"resume with: regrl train --resume {run_dir}" in out
    )
    assert "(saved)" not in out


class _SlowBuild(FakeDriver):
    """A driver whose build (RLlib's actors, a model download) is hit by SIGTERM."""

    unit = "step"

    def __init__(self, ray_style: bool = False):
        self.ray_style = ray_style

    def build(self, cfg, run_dir, choice):
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            time.sleep(30.0)
        except Terminated:
            if self.ray_style:  # what a blocking ray.get does with the handler's exception
                raise KeyboardInterrupt from None
            raise
        return super().build(cfg, run_dir, choice)


@pytest.mark.parametrize("ray_style", [False, True])
def test_sigterm_while_building_is_one_line_and_a_sigterm(tmp_path, capsys, ray_style):
    """Before the loop the handler interrupts at once; the run used to end without a word
    (and, inside a Ray call, as a Ctrl-C: exit 130)."""
    with pytest.raises(Terminated):
        harness.train(_SlowBuild(ray_style), FakeConfig(str(tmp_path)), progress=False)
    (run_dir,) = (tmp_path / "fake").iterdir()
    out = capsys.readouterr().out
    assert out.count("stopped by SIGTERM") == 1
    assert (
        "stopped by SIGTERM before the first step finished: nothing to save; "
        f"resume with: regrl train --resume {run_dir}" in out
    )


def test_ctrl_c_while_building_stays_a_ctrl_c(tmp_path, capsys):
    class CtrlC(FakeDriver):
        def build(self, cfg, run_dir, choice):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        harness.train(CtrlC(), FakeConfig(str(tmp_path)), progress=False)
    assert not isinstance(info.value, Terminated)
    assert "SIGTERM" not in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["soon", "-1", "nan"])
def test_bad_grace_is_one_error(monkeypatch, bad):
    monkeypatch.setenv(GRACE_ENV, bad)
    with pytest.raises(ValueError, match=f"{GRACE_ENV}=.*must be a number of seconds >= 0"):
        grace_seconds()


# ---- a loop in other processes (data-parallel offline): relay and the driver's line ----------
def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_relay_passes_a_sigterm_on_once_from_a_helper_thread():
    calls = []
    with sigterm_as_interrupt(), deferred():
        with relay(lambda: calls.append(threading.current_thread().name)):
            time.sleep(0.3)  # no SIGTERM yet: nothing passed on
            assert calls == []
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for(lambda: calls)
            time.sleep(0.3)  # and only once
    # not the main thread, which may be inside a blocking Ray call when the signal comes
    assert calls == ["regrl-sigterm-relay"]


def test_relay_without_a_sigterm_calls_nothing_and_its_thread_ends():
    calls = []
    with sigterm_as_interrupt(), relay(lambda: calls.append(1)):
        pass
    time.sleep(0.3)
    assert calls == [] and "regrl-sigterm-relay" not in {t.name for t in threading.enumerate()}


def test_relay_that_fails_is_one_line_and_the_grace_period_still_acts(monkeypatch, capsys):
    monkeypatch.setenv(GRACE_ENV, "0.2")

    def broken():
        raise ConnectionError("actor gone")

    with pytest.raises(Terminated):
        with sigterm_as_interrupt(), deferred(), relay(broken):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30.0)  # the grace timer interrupts this
    assert "SIGTERM: could not pass it on: actor gone" in capsys.readouterr().err


def _worker_record(run_dir, logged, saved):
    run_dir.mkdir()
    rows = [json.dumps({"step": i}) for i in range(1, logged + 1)]
    (run_dir / "metrics.jsonl").write_text("".join(r + "\n" for r in rows) + '{"step": 9')
    for i in saved:
        (run_dir / "checkpoints" / f"iter_{i:06d}").mkdir(parents=True)


@pytest.mark.parametrize(
    "logged, saved, says",
    [
        (5, [2, 5], "after epoch 5 (saved)"),
        (5, [2], "after epoch 5 (not saved; the last checkpoint is epoch 2)"),
        (0, [], "before the first epoch finished: nothing to save"),
    ],
)
def test_the_driver_says_what_the_workers_files_hold(tmp_path, capsys, logged, saved, says):
    """The last row (a half-written one from a killed worker is skipped) and the newest
    checkpoint, in the line every kind prints."""
    run_dir = tmp_path / "r"
    _worker_record(run_dir, logged, saved)
    assert isinstance(harness.stopped_by_sigterm(run_dir, "epoch"), Terminated)
    assert capsys.readouterr().out == (
        f"\nstopped by SIGTERM {says}; resume with: regrl train --resume {run_dir}\n"
    )


# ---- end to end: regrl train in a subprocess ------------------------------------------------
def test_regrl_train_sigterm_checkpoints_exits_143_and_resumes(tmp_path):
    sets = {
        "runs_root": tmp_path,
        "training.iterations": 200,  # far more than will run before the SIGTERM
        "training.stop_return": "null",
        "training.train_batch_size": 200,
        "training.minibatch_size": 100,
        "training.num_epochs": 1,
        "resources.num_env_runners": 0,
        "checkpoint.every": 100,  # no checkpoint by the cadence: the SIGTERM writes it
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    stopped = sigterm_when_ready(  # once iteration 1 is logged
        ["train", "configs/cartpole_ppo.yaml", *args, "--quiet"],
        lambda: bool(list(tmp_path.glob("cartpole_ppo/*/metrics.jsonl"))),
    )
    out, err = stopped.out, run_errors(stopped.err)
    assert stopped.returncode == EXIT_TERMINATED, out + err
    (run_dir,) = (tmp_path / "cartpole_ppo").iterdir()
    done = read_state(latest_checkpoint(run_dir))["iteration"]
    assert 1 <= done < 200
    assert f"stopped by SIGTERM after iteration {done} (saved); resume with:" in out
    assert "SIGABRT" not in err and "Traceback" not in err and "error:" not in err, err

    # resume for one more iteration (the saved config is the run's: shorten it to done + 1)
    cfg_path = run_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["training"]["iterations"] = done + 1
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    resumed = subprocess.run(
        [*CLI, "train", "--resume", str(run_dir), "--quiet"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"from iter_{done:06d} (iteration {done})" in resumed.stdout
    assert read_state(latest_checkpoint(run_dir))["iteration"] == done + 1
