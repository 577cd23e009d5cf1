"""RIFT stage 1: the compact imitation loop fits the planner to (synthetic) demonstrations,
keeps the best checkpoint, exports it and logs TensorBoard scalars."""

import numpy as np
import pytest
import torch

from regrl.agents.models.planner import load_planner
from regrl.envs.traffic import scene
from regrl.trainers.config import ConfigError
from regrl.trainers.traffic.planner_io import planner_path
from regrl.trainers.traffic.pretrain import PretrainConfig, load_pretrain_config, pretrain

torch.set_num_threads(1)


def synthetic_demos(path, n=96, seed=0):
    """Straight two-lane road; each sample drives along lane 0 or 1 at its own speed."""
    rng = np.random.default_rng(seed)
    obs, fut = [], []
    t = scene.DT * np.arange(1, scene.T + 1)
    for i in range(n):
        o = scene.empty_obs()
        v = rng.uniform(4, 12)
        o["agent_hist"][:, 0] = v * scene.DT * np.arange(-scene.H + 1, 1)
        o["agent_hist"][:, 2], o["agent_hist"][:, 4] = 1.0, v
        x = np.arange(scene.P) * scene.LANE_SPACING
        for r, y in enumerate((0.0, 3.5)):
            o["lanes"][r] = np.stack([x, np.full_like(x, y)], -1)
            o["lane_mask"][r], o["lane_width"][r] = 1.0, 3.5
        o["agent_size"][:], o["speed_limit"][:] = (4.5, 2.0), 15.0
        y = 3.5 * (i % 2) * np.clip(t / 3.0, 0, 1)  # odd samples change lane
        obs.append(scene.flatten(o))
        fut.append(np.stack([v * t, y], -1))
    np.savez(
        path,
        obs=np.stack(obs),
        future=np.stack(fut).astype(np.float32),
        future_mask=np.ones((n, scene.T), bool),
        speed=rng.uniform(4, 12, 500),
    )


def test_pretrain_fits_demos_and_exports(tmp_path, capsys):
    synthetic_demos(tmp_path / "demos.npz")
    cfg = PretrainConfig(
        runs_root=str(tmp_path),
        demos=str(tmp_path / "demos.npz"),
        num_modes=2,
        dim=16,
        epochs=6,
        batch_size=32,
        lr=3e-3,
        export=str(tmp_path / "export" / "planner.pt"),
    )
    run_dir = pretrain(cfg)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")]
    first = float(lines[0].split("train loss")[1].split()[0])
    last = float(lines[-1].split("train loss")[1].split()[0])
    assert len(lines) == 6 and last < first
    planner = load_planner(planner_path(run_dir))
    assert planner.config.num_modes == 2 and planner.config.horizon == scene.T
    assert (tmp_path / "export" / "planner.pt").is_file()
    assert list((run_dir / "tb").glob("events.*"))
    assert "kind: planner" in (run_dir / "config.yaml").read_text()


def test_pretrain_config_errors(tmp_path):
    (tmp_path / "p.yaml").write_text("kind: planner\nepoch: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        load_pretrain_config(tmp_path / "p.yaml")
    with pytest.raises(FileNotFoundError, match="regrl traffic demos"):
        pretrain(PretrainConfig(runs_root=str(tmp_path), demos=str(tmp_path / "none.npz")))


def test_shipped_rift_configs_agree_on_the_mode_count():
    """Stage 2 refuses a planner whose M differs from env.kwargs.num_modes, so every shipped
    stage-2 config must ask for the M that configs/rift_pretrain.yaml exports."""
    from pathlib import Path

    import yaml

    configs = Path(__file__).resolve().parents[2] / "configs"
    exported = yaml.safe_load((configs / "rift_pretrain.yaml").read_text())["num_modes"]
    stage2 = {
        p.name: yaml.safe_load(p.read_text())["env"]["kwargs"]
        for p in sorted(configs.glob("rift_*.yaml"))
        if p.name != "rift_pretrain.yaml"
    }
    assert "rift_ci.yaml" in stage2
    wrong = {
        name: kw.get("num_modes")
        for name, kw in stage2.items()
        if kw.get("action_mode", "candidate") == "candidate" and kw.get("num_modes") != exported
    }
    assert not wrong, f"rift_pretrain.yaml exports M={exported}; these ask otherwise: {wrong}"


def test_aux_weight_option(tmp_path):
    """Pluto's drivable-area cost: off by default (train loss = imitation loss), reported on
    validation either way, added to the training loss when aux_weight > 0; negative: error."""
    from regrl.trainers.traffic.pretrain import PretrainSession

    synthetic_demos(tmp_path / "demos.npz", n=32)
    base = dict(runs_root=str(tmp_path), demos=str(tmp_path / "demos.npz"), num_modes=2, dim=8)
    base.update(epochs=1, batch_size=32, export=None)
    assert PretrainConfig(**base).aux_weight == 0.0
    (tmp_path / "off").mkdir(), (tmp_path / "on").mkdir()
    off = PretrainSession(PretrainConfig(**base), tmp_path / "off").step(1)
    assert "pretrain/train_aux_cost" not in off and "pretrain/val_aux_cost" in off
    assert off["pretrain/train_loss"] == pytest.approx(
        off["pretrain/train_reg_loss"] + off["pretrain/train_ce_loss"], rel=1e-5
    )
    on = PretrainSession(PretrainConfig(**base, aux_weight=2.0), tmp_path / "on").step(1)
    assert on["pretrain/train_loss"] == pytest.approx(
        on["pretrain/train_reg_loss"]
        + on["pretrain/train_ce_loss"]
        + 2.0 * on["pretrain/train_aux_cost"],
        rel=1e-5,
    )
    with pytest.raises(ValueError, match="aux_weight must be >= 0"):
        PretrainConfig(**dict(base, aux_weight=-1.0))


def test_stage1_logs_min_fde_and_its_validation_split_can_be_rebuilt(tmp_path):
    """Stage 1 logs min-FDE beside min-ADE (train and val, and the minADE_K / minFDE_K of all
    candidates); split_indices with a generator seeded like the run rebuilds its validation
    split, and validation_metrics on the saved planner.pt reproduces the validation metrics
    stored in it (what benchmarks/rift_stage1_fidelity.py relies on). Catches a session that
    draws its split differently from split_indices, or a validation pass that differs."""
    from regrl.trainers.traffic.pretrain import (
        PretrainSession,
        load_demos,
        pretrain_progress_line,
        split_indices,
        validation_metrics,
    )

    synthetic_demos(tmp_path / "demos.npz", n=40)
    cfg = PretrainConfig(
        runs_root=str(tmp_path),
        demos=str(tmp_path / "demos.npz"),
        num_modes=2,
        dim=8,
        epochs=1,
        batch_size=16,
        seed=3,
        val_fraction=0.25,
        export=None,
    )
    (tmp_path / "run").mkdir()
    session = PretrainSession(cfg, tmp_path / "run")
    m = session.step(1)
    for split in ("train", "val"):
        for k in ("min_ade", "min_fde", "min_ade_k", "min_fde_k"):
            assert np.isfinite(m[f"pretrain/{split}_{k}"]), (split, k)
        assert m[f"pretrain/{split}_min_ade_k"] <= m[f"pretrain/{split}_min_ade"] + 1e-6
        assert m[f"pretrain/{split}_min_fde_k"] <= m[f"pretrain/{split}_min_fde"] + 1e-6
    assert "minFDE" in pretrain_progress_line(1, 1, m)
    val, train = split_indices(40, 0.25, torch.Generator().manual_seed(3))
    assert len(val) == 10 and torch.equal(val, session.val_idx)
    assert torch.equal(train, session.train_idx)
    blob = torch.load(tmp_path / "run" / "planner.pt", weights_only=True)
    again = validation_metrics(
        load_planner(tmp_path / "run" / "planner.pt"), load_demos(cfg.demos), val, cfg
    )
    for k in ("min_ade", "min_fde", "min_fde_k", "top1_acc", "loss"):
        assert again[k] == pytest.approx(blob["val"][k], rel=1e-6, abs=1e-7), k


def test_a_text_file_as_planner_is_one_checkpoint_error(tmp_path):
    """A text file given as planner.pt (torch.load raises KeyError on its bytes) is one
    CheckpointError naming the file, not a traceback."""
    from regrl.trainers.checkpoint import CheckpointError
    from regrl.trainers.traffic.planner_io import load_planner

    path = tmp_path / "planner.pt"
    path.write_text("junk text\n")
    with pytest.raises(CheckpointError, match="not a readable planner checkpoint"):
        load_planner(path)
