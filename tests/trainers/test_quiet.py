"""Ray start-up noise is filtered in one place (trainers/quiet.py), exactly and nowhere else."""

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from regrl.trainers import quiet

ROOT = Path(__file__).resolve().parents[2]


class _Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def captured():
    """A handler on every noisy logger, and the loggers' filters restored afterwards."""
    handler = _Keep()
    loggers = [logging.getLogger(n.logger) for n in quiet.NOISE] + [logging.getLogger("regrl.x")]
    saved = [(lg, list(lg.filters), lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield handler
    for lg, filters, level in saved:
        lg.removeHandler(handler)
        lg.filters[:] = filters
        lg.setLevel(level)


def test_ray_emitters_are_dropped_and_other_messages_kept(captured):
    from ray._common.deprecation import deprecation_warning
    from ray._private.authentication.authentication_token_setup import _warn_token_auth_enabled

    quiet.install()
    quiet.install()  # idempotent: one filter per logger
    assert all(
        sum(isinstance(f, quiet.DropNoise) for f in logging.getLogger(n.logger).filters) == 1
        for n in quiet.NOISE
    )
    # Ray's own code formats the two messages whose text we did not copy by hand
    deprecation_warning(
        old="RLModule(config=[RLModuleConfig object])",
        new="RLModule(observation_space=.., action_space=..)",
        error=False,
    )
    _warn_token_auth_enabled()
    logging.getLogger("ray.tune.utils.util").warning("Install gputil for GPU system monitoring.")
    logging.getLogger("ray.rllib.algorithms.algorithm_config").warning(
        "You are running PPO on the new API stack! This is the new default behavior for this "
        "algorithm."
    )
    kept = [
        "DeprecationWarning: `RLModule(config=..)` has been deprecated. Use `x` instead.",
        "Install psutil to monitor system performance.",
        "Install gputil for GPU system monitoring.",
    ]  # the last: a logger we do not filter
    deprecation_warning(old="RLModule(config=..)", new="x", error=False)  # another deprecation
    logging.getLogger("ray.tune.utils.util").warning(kept[1])
    logging.getLogger("regrl.x").warning(kept[2])
    assert [m.split(" This will")[0] for m in captured.messages] == kept


def test_the_worker_hook_names_the_installer_and_init_ray_passes_it():
    module, name = quiet.WORKER_HOOK.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is quiet.quiet_worker
    from regrl.trainers.ray_session import init_ray

    for address in (None, "auto"):
        with mock.patch("ray.is_initialized", return_value=False), mock.patch("ray.init") as init:
            init_ray(address)
        hook = init.call_args.kwargs["runtime_env"]["worker_process_setup_hook"]
        assert hook == quiet.WORKER_HOOK


def test_cartpole_start_up_output_has_no_ray_noise(tmp_path):
    """One iteration with one env runner: the driver's and the worker's filters."""
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    regrl = Path(sys.executable).parent / "regrl"
    proc = subprocess.run(
        [
            str(regrl),
            "train",
            "configs/cartpole_ppo.yaml",
            "--quiet",
            "--set",
            "training.iterations=1",
            "--set",
            "training.train_batch_size=200",
            "--set",
            "training.minibatch_size=64",
            "--set",
            "resources.num_env_runners=1",
            "--set",
            f"runs_root={tmp_path}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done: 1 iterations" in proc.stdout
    for noise in ("RLModuleConfig", "gputil", "Token authentication", "new API stack"):
        assert noise not in proc.stderr, proc.stderr
