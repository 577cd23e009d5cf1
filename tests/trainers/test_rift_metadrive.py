"""RIFT end to end on MetaDrive: one RLlib iteration of configs/rift_ci.yaml (tiny planner,
one CBV, 16-step episodes, num_env_runners=0), then ``regrl eval``'s traffic evaluator."""

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("metadrive")

from regrl.agents.models.planner import Planner, save_planner  # noqa: E402
from regrl.trainers.config import load_config  # noqa: E402
from regrl.trainers.run import train  # noqa: E402
from regrl.trainers.traffic.planner_io import scene_planner_config  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
torch.set_num_threads(1)


def test_one_rift_iteration_on_metadrive_then_eval(ray_session, tmp_path):
    torch.manual_seed(0)
    planner = tmp_path / "planner.pt"
    save_planner(planner, Planner(scene_planner_config(num_modes=4, dim=8)))
    cfg = load_config(
        CONFIGS / "rift_ci.yaml", [f"runs_root={tmp_path}", f"env.kwargs.planner={planner}"]
    )
    result = train(cfg, progress=False)
    m = result.metrics
    assert result.iteration == 1 and m["env/env_steps_total"] >= 32
    assert math.isfinite(m["learner/policy_loss"]) and "learner/dual_clip_frac" in m
    assert 0.0 <= m["learner/top1_best"] <= 1.0  # the ranking metric reaches the results
    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.evaluate import load_module

    before = torch.load(planner, weights_only=True)["state_dict"]
    after = load_module(latest_checkpoint(result.run_dir), "cbv").planner.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("pi_head.") for k in moved), moved  # RIFT: head only
    from regrl.trainers.evaluate import evaluate

    report = evaluate(result.run_dir, episodes=1)
    saved = json.loads((result.run_dir / "eval.json").read_text())
    assert saved["method"] == "RIFT" and len(saved["blocks"]) == 1
    for key in ("cpk", "orr", "uc", "rp", "sw_speed", "ego_route_completion"):
        assert key in saved["mean"], key
    assert saved["mean"]["rp"] > 0 and report["table"] == "eval.md"
    assert "| RIFT | 1 |" in (result.run_dir / "eval.md").read_text()


def test_model_trainable_scorer_fine_tunes_the_scorer_but_not_the_trajectory_head(
    ray_session, tmp_path
):
    torch.manual_seed(0)
    planner = tmp_path / "planner.pt"
    save_planner(planner, Planner(scene_planner_config(num_modes=4, dim=8)))
    cfg = load_config(
        CONFIGS / "rift_ci.yaml",
        [f"runs_root={tmp_path}", f"env.kwargs.planner={planner}", "model.trainable=scorer"],
    )
    result = train(cfg, progress=False)
    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.evaluate import load_module

    before = torch.load(planner, weights_only=True)["state_dict"]
    after = load_module(latest_checkpoint(result.run_dir), "cbv").planner.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("pi_head.") for k in moved), moved
    assert any(k.startswith(("agent_enc.", "decoder.")) for k in moved), moved
    assert not any(k.startswith("traj_head.") for k in moved), moved
