"""RIFT evaluation is deterministic (issue 16 §1): the same planner, seeds and scenario blocks
give bit-identical metrics whatever else runs on the machine and whatever torch thread count
the caller left behind."""

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("metadrive")

from regrl.agents.models.planner import Planner, save_planner  # noqa: E402
from regrl.trainers.traffic.evaluation import evaluate_policy, scorer_policy  # noqa: E402
from regrl.trainers.traffic.planner_io import load_planner, scene_planner_config  # noqa: E402

SPIN = "while True: pass"


@pytest.fixture(scope="module")
def planner_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("det") / "planner.pt"
    save_planner(path, Planner(scene_planner_config(num_modes=2, dim=16)))
    return path


def _evaluate(path, threads_seen=None):
    planner = load_planner(path)
    planner.eval()

    def score(s):
        if threads_seen is not None:
            threads_seen.append(torch.get_num_threads())
        return planner(s, with_traj=False)["logits"]

    env = dict(
        planner=str(path), action_mode="candidate", num_cbv=2, map="intersection", horizon=20
    )
    opts = dict(episodes=2, blocks=2, demos="none", seed=0, env_seed=1000)
    return evaluate_policy(env, scorer_policy(score), opts, say=lambda _: None)["blocks"]


def _bits(blocks):
    """Every metric of every block as its exact float64 bytes (NaN == NaN)."""
    return [{k: np.float64(v).tobytes() for k, v in b.items()} for b in blocks]


def test_evaluation_is_bit_identical_under_cpu_load_and_other_thread_counts(planner_file):
    quiet = _evaluate(planner_file)
    hogs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)]
    before, seen = torch.get_num_threads(), []
    try:
        torch.set_num_threads(2)  # the caller's setting must not leak into the evaluation
        loaded = _evaluate(planner_file, seen)
    finally:
        torch.set_num_threads(before)
        for h in hogs:
            h.kill()
            h.wait()
    assert quiet[0]["cbv_steps"] > 0 and len(quiet) == 2
    assert _bits(loaded) == _bits(quiet)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
