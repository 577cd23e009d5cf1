"""Supervised closures: D4 helpers and models (agents/models/closure.py), the soft-equivariance
plugin (agents/offline/soft_equivariance.py), the offline model registry, and the tiny
end-to-end ``regrl turbulence dataset`` + ``compare`` (trainers/turbulence/closures.py)."""

import json

import numpy as np
import pytest
import torch

from regrl.agents.models.closure import D4, ClosureCNN, LocalCoefficientMLP, d4_apply, d4_inverse
from regrl.agents.offline.soft_equivariance import (
    REFLECTIONS,
    ROTATIONS,
    equivariance_penalty,
    soft_equivariance_loss,
)
from regrl.trainers.config import ConfigError


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_d4_apply_by_hand_and_inverse():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert d4_apply(x, 1, False).tolist() == [[2.0, 4.0], [1.0, 3.0]]
    assert d4_apply(x, 0, True).tolist() == [[-2.0, -1.0], [-4.0, -3.0]]  # pseudo-scalar
    assert d4_apply(x, 0, True, pseudoscalar=False).tolist() == [[2.0, 1.0], [4.0, 3.0]]
    g = torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(0))
    images = {tuple(d4_apply(g, k, f).flatten().tolist()) for k, f in D4}
    assert len(images) == 8
    for k, f in D4:
        torch.testing.assert_close(d4_inverse(d4_apply(g, k, f), k, f), g)


def test_group_averaged_cnn_is_exactly_equivariant_and_the_plain_one_is_not():
    torch.manual_seed(0)
    x = torch.randn(2, 12 * 12, dtype=torch.float64)
    for symmetric in (True, False):
        model = ClosureCNN((4, 4), symmetric=symmetric).double()
        fx = model(x)["out"].reshape(2, 12, 12)
        with torch.no_grad():
            worst = max(
                float(
                    (
                        model(d4_apply(x.reshape(2, 12, 12), k, f).reshape(2, -1))["out"].reshape(
                            2, 12, 12
                        )
                        - d4_apply(fx, k, f)
                    )
                    .abs()
                    .max()
                )
                for k, f in D4
            )
        assert (worst < 1e-12) if symmetric else (worst > 1e-3)


def test_equivariance_penalty_hand_values_and_zero_for_an_equivariant_model():
    """f(x) = w ⊙ x with w = e_00 on a 2×2 grid, x = 1: f(gx) − g f(x) = (w − g·w) ⊙ gx, so
    R = mean_g mean_pixels (w − g·w)²: each rotation moves the corner (0.5), one of the
    four reflections fixes it (R_ref = 3 · 0.5 / 4 = 0.375)."""
    w = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    x = torch.ones(1, 2, 2)
    f = lambda z: w * z  # noqa: E731
    assert float(equivariance_penalty(f, x, ROTATIONS)) == pytest.approx(0.5)
    assert float(equivariance_penalty(f, x, REFLECTIONS)) == pytest.approx(0.375)
    loss, metrics = soft_equivariance_loss(f, x, f(x), rotation=2.0, reflection=1.0)
    assert float(loss) == pytest.approx(1.375)
    assert float(metrics["reflection"]) == pytest.approx(0.375)
    model = ClosureCNN((4,), symmetric=True).double()
    g = lambda z: model(z.reshape(len(z), -1))["out"].reshape(z.shape)  # noqa: E731
    z = torch.randn(2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert float(equivariance_penalty(g, z, ROTATIONS + REFLECTIONS)) < 1e-24


def test_local_coefficient_model_output_is_bounded():
    out = LocalCoefficientMLP(5, 1, (8,))(1e3 * torch.randn(7, 5))["out"].detach()
    assert out.shape == (7, 1) and float(out.abs().max()) <= 1.0


def _offline_cfg(tmp_path, arch, plugins=(), task="regression"):
    from regrl.trainers.offline import offline_config_from_dict

    x = np.random.default_rng(0).normal(size=(6, 64)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x=x, y=x**2)
    return offline_config_from_dict(
        {
            "kind": "offline",
            "name": "t",
            "task": task,
            "runs_root": str(tmp_path / "runs"),
            "data": {"path": str(tmp_path / "f.npz"), "val_fraction": 0.34},
            "model": {"arch": arch, "hidden": [4]},
            "plugins": list(plugins),
            "training": {"epochs": 2, "batch_size": 4},
            "checkpoint": {"every": 2, "keep": 1},
        }
    )


def test_offline_learner_trains_a_cnn_with_the_soft_equivariance_plugin(tmp_path):
    from regrl.trainers.offline import train_offline

    cfg = _offline_cfg(
        tmp_path, "closure_cnn", [{"name": "soft_equivariance", "rotation": 1.0, "reflection": 0.5}]
    )
    result = train_offline(cfg, progress=False)
    assert result.metrics["plugin/soft_equivariance/rotation"] > 0
    assert np.isfinite(result.metrics["val/mse"])


def test_offline_model_arch_errors_are_named(tmp_path):
    with pytest.raises(ConfigError, match="closure_cnn"):
        _offline_cfg(tmp_path, "closure_cn")
    from regrl.trainers.offline import build_model

    cfg = _offline_cfg(tmp_path, "closure_cnn", task="classification")
    with pytest.raises(ConfigError, match="needs task: regression"):
        build_model(cfg, 64, 10)


def test_correlation_hand_values():
    from regrl.trainers.turbulence.closures import correlation

    t = np.array([1.0, 2.0, 4.0])
    assert correlation(torch.tensor(2 * t + 1), t) == pytest.approx(1.0)
    assert correlation(torch.tensor(-t), t) == pytest.approx(-1.0)
    assert np.isnan(correlation(torch.zeros(3), t))


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A 16² reference (32² DNS) and a dataset of 3 training + 2 held-out snapshots."""
    from regrl.envs.turbulence.reference import ReferenceSpec, generate_reference, save_reference
    from regrl.trainers.cli import main

    root = tmp_path_factory.mktemp("closures")
    spec = ReferenceSpec(
        n_dns=32,
        n_les=16,
        nu=1e-3,
        dt=2e-3,
        spinup_time=0.5,
        average_time=0.3,
        sample_every=0.1,
        n_init=4,
        pdf_bins=41,
    )
    save_reference(root / "ref.npz", generate_reference(spec))
    rc = main(
        [
            "turbulence",
            "dataset",
            "--out",
            str(root / "ds.npz"),
            "--reference",
            str(root / "ref.npz"),
            "--n-dns",
            "32",
            "--n-les",
            "16",
            "--snapshots",
            "3",
            "--heldout-snapshots",
            "2",
            "--train-trajectories",
            "2",
            "--spinup-time",
            "0.02",
            "--sample-every",
            "0.02",
            "--dt",
            "2e-3",
            "--dns-cache",
            str(root / "dns.npz"),
        ]
    )
    assert rc == 0 and (root / "dns.npz").is_file()
    return root


def test_training_files_normalise_and_bound_the_targets(tiny_files, tmp_path):
    from regrl.envs.turbulence.dataset import load_dataset
    from regrl.trainers.turbulence.closures import training_files

    data = load_dataset(tiny_files / "ds.npz")
    files = training_files(data, 2, tmp_path)
    local = np.load(files["local_train"])
    assert local["x"].shape == (2 * 16, 13) and float(np.abs(local["y"]).max()) <= 1.0
    np.testing.assert_allclose(local["y"][:16, 0] * 0.125, data["cs2"][0], rtol=1e-6)
    field = np.load(files["field_train"])
    assert field["x"].shape == (2, 256)
    assert float(field["x"].std()) == pytest.approx(1.0, rel=1e-4)
    with pytest.raises(ConfigError, match="3 training snapshots, 5 requested"):
        training_files(data, 5, tmp_path)


def test_compare_end_to_end_writes_table_json_and_figures(tiny_files, capsys):
    from regrl.trainers.cli import main

    out = tiny_files / "cmp"
    rc = main(
        [
            "turbulence",
            "compare",
            "--dataset",
            str(tiny_files / "ds.npz"),
            "--reference",
            str(tiny_files / "ref.npz"),
            "--out",
            str(out),
            "--snapshots",
            "1,3",
            "--seeds",
            "1",
            "--time-units",
            "0.04",
            "--spinup",
            "0.02",
            "--local-steps",
            "5",
            "--cnn-steps",
            "2",
        ]
    )
    assert rc == 0
    summary = json.loads((out / "compare.json").read_text())
    names = [r["name"] for r in summary["closures"]]
    assert names[:2] == ["Smagorinsky C_s=0.17", "dynamic Smagorinsky"]
    assert [r["snapshots"] for r in summary["closures"][2:]] == [1, 1, 3, 3]
    assert all(-1 <= r["a_priori_corr"] <= 1 for r in summary["closures"][2:])
    assert -1 <= summary["oracle_a_priori_corr"] <= 1
    assert "| supervised CNN Π, 3 snapshot(s) | 3 |" in (out / "compare.md").read_text()
    assert (out / "data_efficiency.png").stat().st_size > 0
    assert (out / "eval_turbulence.png").stat().st_size > 0
    # every closure run train_closure started ends like a run of regrl train: summary.json
    runs = sorted(p for p in (out / "runs").glob("*/*") if p.is_dir())
    assert len(runs) == 4
    for run_dir in runs:
        done = json.loads((run_dir / "summary.json").read_text())
        assert done["kind"] == "offline" and "val/loss" in done["metrics"]


def test_compare_input_errors_are_named(tiny_files, capsys):
    from regrl.trainers.cli import main

    base = [
        "turbulence",
        "compare",
        "--dataset",
        str(tiny_files / "ds.npz"),
        "--out",
        str(tiny_files / "bad"),
    ]
    assert main(base) == 2  # packaged 64² reference: mismatch
    assert "another reference" in capsys.readouterr().err
    assert (
        main(
            base
            + [
                "--reference",
                str(tiny_files / "ref.npz"),
                "--snapshots",
                "1",
                "--rl-run",
                str(tiny_files),
                "--local-steps",
                "1",
                "--cnn-steps",
                "1",
            ]
        )
        == 2
    )
    assert "no complete checkpoint" in capsys.readouterr().err


def test_soft_equivariance_on_vector_outputs_is_an_invariance_penalty(tmp_path):
    """Outputs that are not fields: R = mean_g ‖f(ρ(g)x) − f(x)‖². For f(x) = Σ x (a sum is
    rotation invariant, and a reflection negates the pseudo-scalar field): R_rot = 0 and
    R_ref = (2Σx)² for one sample."""
    x = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    f = lambda z: z.sum((-2, -1))[:, None]  # noqa: E731
    assert float(equivariance_penalty(f, x, ROTATIONS, invariant=True)) == pytest.approx(0.0)
    assert float(equivariance_penalty(f, x, REFLECTIONS, invariant=True)) == pytest.approx(22.0**2)
    # through the learner on 2x2 "fields" -> 2 targets (the offline smoke-test data shape)
    from regrl.trainers.offline import offline_config_from_dict, train_offline

    rng = np.random.default_rng(1)
    xs = rng.normal(size=(200, 4)).astype(np.float32)
    ys = np.stack([xs @ [1.0, -2.0, 0.5, 0.0], np.sin(xs[:, 0])], 1).astype(np.float32)
    np.savez(tmp_path / "reg.npz", obs=xs, act=ys)
    cfg = offline_config_from_dict(
        {
            "kind": "offline",
            "name": "t",
            "task": "regression",
            "runs_root": str(tmp_path / "r"),
            "data": {
                "path": str(tmp_path / "reg.npz"),
                "x_key": "obs",
                "y_key": "act",
                "val_fraction": 0.25,
            },
            "model": {"hidden": [32, 32]},
            "training": {"epochs": 4, "batch_size": 32, "lr": 0.01},
            "plugins": [{"name": "soft_equivariance", "rotation": 0.01, "reflection": 0.01}],
        }
    )
    metrics = train_offline(cfg, progress=False).metrics
    assert metrics["val/mse"] < 1.0 and metrics["plugin/soft_equivariance/reflection"] > 0


def test_dns_cache_round_trips_and_a_cut_short_one_is_recomputed(tmp_path, capsys):
    """The DNS cache is written atomically (no temporary file left, the exact path) and read
    back equal; a truncated or foreign file at the cache path is reported and ignored (the
    DNS reruns) instead of a bare zipfile traceback."""
    from regrl.envs.turbulence.dataset import DatasetSpec
    from regrl.trainers.turbulence.closures import _cached_dns, _save_dns

    spec = DatasetSpec(snapshots=4, heldout_snapshots=2, train_trajectories=2)
    assert spec.per_trajectory == 2
    dns = {"omega": np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)}
    dns["time"] = np.array([0.1, 0.2, 0.3])
    path = tmp_path / "dns.npz"
    _save_dns(path, dns, spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dns.npz"]
    got = _cached_dns(path, spec)
    np.testing.assert_array_equal(got["omega"], dns["omega"][:, :2])
    np.testing.assert_array_equal(got["time"], dns["time"][:2])

    path.write_bytes(path.read_bytes()[:100])  # cut short
    assert _cached_dns(path, spec) is None
    assert "not a readable DNS cache" in capsys.readouterr().out
    path.write_text("not an npz")
    assert _cached_dns(path, spec) is None
