"""regrl sweep: value/grid parsing, aggregation that never averages failures
in, trial bookkeeping (finished trials are skipped, unfinished ones resume), and end-to-end
sweeps on Ray Tune (RL with 2 seeds; offline with a failing grid point, then --resume)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regrl.trainers.checks import ConfigError
from regrl.trainers.sweep import (
    aggregate,
    assign,
    expand_grid,
    parse_grid,
    point_label,
    render_markdown,
    run_dirs,
    run_trial,
    yaml_value,
)

ROOT = Path(__file__).resolve().parents[2]


# ---- pure parts --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1e-3", 0.001),
        ("5E-4", 0.0005),
        ("-2e+2", -200.0),
        (".5", 0.5),
        ("1_000", 1000),
        ("3", 3),
        ("true", True),
        ("null", None),
        ("[64, 64]", [64, 64]),
        ("adam", "adam"),
        ("e5", "e5"),
    ],
)
def test_yaml_value_types_as_users_write_them(raw, expected):
    value = yaml_value(raw)
    assert value == expected and type(value) is type(expected)


def test_parse_grid_typed_values_and_brackets():
    grid = parse_grid(["training.lr=1e-3,3e-4", "model.hidden=[64,64],[32]"])
    assert grid == [("training.lr", [0.001, 0.0003]), ("model.hidden", [[64, 64], [32]])]


@pytest.mark.parametrize(
    "items, match",
    [
        (["training.lr"], "expected KEY.PATH=VALUE"),
        (["=1,2"], "expected KEY.PATH=VALUE"),
        (["a=1", "a=2"], "given twice"),
        (["a=1,,2"], "empty value"),
    ],
)
def test_parse_grid_errors(items, match):
    with pytest.raises(ConfigError, match=match):
        parse_grid(items)


def test_expand_grid_is_the_cross_product():
    points = expand_grid([("a", [1, 2]), ("b.c", ["x", "y", "z"])])
    assert len(points) == 6 and {"a": 2, "b.c": "z"} in points and {"a": 1, "b.c": "x"} in points
    assert expand_grid([]) == [{}]


def test_point_label_is_one_path_segment():
    assert point_label({}) == "base"
    label = point_label({"data.path": "../x/y.npz", "training.lr": 0.001})
    assert "/" not in label and "lr=0.001" in label


def test_assign_sets_typed_nested_values():
    data = {"training": {"lr": 0.1}}
    assign(data, "training.lr", 0.001)
    assign(data, "model.hidden", [8])
    assert data == {"training": {"lr": 0.001}, "model": {"hidden": [8]}}


def _rec(name, seed, status, metrics=None, error=None, label="p"):
    return {
        "name": name,
        "label": label,
        "point": {"a": 1},
        "seed": seed,
        "status": status,
        "metrics": metrics or {},
        "error": error,
    }


def test_aggregate_lists_failures_and_never_averages_them_in():
    points = aggregate(
        [
            _rec("p_seed0", 0, "finished", {"m": 1.0}),
            _rec("p_seed1", 1, "finished", {"m": 3.0, "only1": 7.0}),
            _rec("p_seed2", 2, "failed", error="ValueError: boom"),
            _rec("p_seed3", 3, "unfinished"),
        ]
    )
    (p,) = points
    assert p["n"] == 2 and p["metrics"]["m"]["mean"] == 2.0
    assert p["metrics"]["m"]["per_seed"] == {"0": 1.0, "1": 3.0}
    # s = sqrt(2), n = 2: half-width t_{0.975,1} * s / sqrt(n) = t_{0.975,1} = 12.7062047
    assert p["metrics"]["m"]["ci95"] == pytest.approx(12.7062047)
    assert p["metrics"]["only1"]["n"] == 1 and p["metrics"]["only1"]["ci95"] is None
    assert p["failed"] == [{"trial": "p_seed2", "seed": 2, "error": "ValueError: boom"}]
    assert p["unfinished"] == [{"trial": "p_seed3", "seed": 3}]
    md = render_markdown("s", points)
    assert "2 ± 12.71" in md and "n=1, no interval" in md and "Student-t" in md
    assert "**FAILED** trial `p_seed2` (seed 2): ValueError: boom" in md
    assert "**UNFINISHED** trial `p_seed3`" in md


# ---- trial bookkeeping (no Ray: the offline kind trains in-process) ----------------------------
@pytest.fixture(scope="module")
def blob_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    path = tmp_path_factory.mktemp("data") / "d.npz"
    np.savez(path, x=x, y=(x[:, 0] > 0).astype(np.int64))
    return path


def _offline_raw(trial_dir: Path, data: Path, epochs=4):
    return {
        "kind": "offline",
        "name": trial_dir.name,
        "runs_root": str(trial_dir.parent),
        "data": {"path": str(data), "val_fraction": 0.25},
        "model": {"hidden": [8]},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.01},
        "checkpoint": {"every": 2, "keep": 3},
    }


def test_run_trial_skips_finished_and_resumes_unfinished(tmp_path, blob_file, monkeypatch):
    import shutil

    trial = tmp_path / "trials" / "base_seed0"
    metrics = run_trial(trial, "offline", _offline_raw(trial, blob_file))
    (run,) = run_dirs(trial)
    assert json.loads((run / "summary.json").read_text())["metrics"] == metrics
    # a crash after epoch 2: no summary, the epoch-4 checkpoint never written
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "iter_000004")
    again = run_trial(trial, "offline", _offline_raw(trial, blob_file))
    assert run_dirs(trial) == [run]  # resumed in place, not started anew
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # lines after the checkpoint were dropped, then rewritten
    assert (run / "summary.json").is_file() and set(again) == set(metrics)

    def must_not_train(*a, **k):
        raise AssertionError("a finished trial was trained again")

    monkeypatch.setattr("regrl.trainers.kinds.train_kind", must_not_train)
    assert run_trial(trial, "offline", _offline_raw(trial, blob_file)) == again


def test_run_trial_records_the_error(tmp_path):
    trial = tmp_path / "trials" / "bad_seed0"
    with pytest.raises(ConfigError):
        run_trial(trial, "offline", _offline_raw(trial, tmp_path / "missing.npz"))
    first = (trial / "error.txt").read_text().splitlines()[0]
    assert first.startswith("ConfigError: ") and "missing.npz" in first


# ---- end to end through Ray Tune (subprocesses: each starts and stops its own Ray) -------------
def _regrl(*args, timeout=240):
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    return subprocess.run(
        [sys.executable, "-m", "regrl.trainers.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def _sweep_dir(stdout: str) -> Path:
    return Path(stdout.split("results: ")[1].split()[0]).parent


def test_rl_sweep_two_seeds_end_to_end(tmp_path):
    proc = _regrl(
        "sweep",
        "configs/cartpole_ppo.yaml",
        "--seeds",
        "2",
        "--set",
        "training.iterations=2",
        "--set",
        "training.train_batch_size=200",
        "--set",
        "training.minibatch_size=64",
        "--set",
        "resources.num_env_runners=0",
        "--set",
        f"runs_root={tmp_path}",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    sweep = _sweep_dir(proc.stdout)
    body = json.loads((sweep / "results.json").read_text())
    (point,) = body["points"]
    ret = point["metrics"]["env/episode_return_mean"]
    assert ret["n"] == 2 and set(ret["per_seed"]) == {"0", "1"} and ret["ci95"] is not None
    assert ret["mean"] == pytest.approx(sum(ret["per_seed"].values()) / 2)
    md = (sweep / "results.md").read_text()
    assert "| env/episode_return_mean |" in md and " ± " in md
    assert (sweep / "curves" / "env_episode_return_mean.png").is_file()
    for seed in (0, 1):
        (run,) = run_dirs(sweep / "trials" / f"base_seed{seed}")
        assert list((run / "tb").iterdir())  # tensorboard --logdir SWEEP_DIR sees every trial
        import yaml

        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed


@pytest.mark.slow  # ~85 s on 2 cores (two Ray sessions); the fast tests above cover error
# recording, skipping finished trials and aggregation without Ray
def test_failed_trial_is_reported_then_resume_reruns_only_it(tmp_path, blob_file):
    missing = tmp_path / "late.npz"
    proc = _regrl(
        "sweep",
        "configs/offline_digits.yaml",
        "--seeds",
        "1",
        "--grid",
        f"data.path={blob_file},{missing}",
        "--set",
        "training.epochs=2",
        "--set",
        f"runs_root={tmp_path}",
        "--name",
        "offline_sweep",
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    sweep = _sweep_dir(proc.stdout)
    body = json.loads((sweep / "results.json").read_text())
    ok, bad = body["points"]
    assert ok["n"] == 1 and not ok["failed"] and ok["metrics"]["val/accuracy"]["ci95"] is None
    assert bad["n"] == 0 and not bad["metrics"]
    assert "late.npz" in bad["failed"][0]["error"]
    assert "**FAILED**" in (sweep / "results.md").read_text()
    good_trial = next(t for t in body["trials"] if t["status"] == "finished")
    summary = Path(good_trial["run_dir"]) / "summary.json"
    stamp = summary.stat().st_mtime_ns
    # the cause of the failure goes away; --resume reruns the failed trial only
    import shutil

    shutil.copy(blob_file, missing)
    proc = _regrl("sweep", "--resume", str(sweep))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    body = json.loads((sweep / "results.json").read_text())
    assert [p["n"] for p in body["points"]] == [1, 1]
    assert summary.stat().st_mtime_ns == stamp and len(run_dirs(summary.parent.parent)) == 1
    assert "2/2 trials finished" in proc.stdout


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["sweep"], "sweep needs a CONFIG"),
        (["sweep", "configs/cartpole_ppo.yaml", "--seeds", "0"], "--seeds must be >= 1"),
        (
            ["sweep", "configs/cartpole_ppo.yaml", "--grid", "training.lr=1e-3,-1"],
            r'at grid point \{"training.lr": -1\}.*lr must be > 0',
        ),
        (
            ["sweep", "configs/cartpole_ppo.yaml", "--grid", "training.lrr=1e-3"],
            "did you mean 'lr'",
        ),
        (["sweep", "configs/cartpole_ppo.yaml", "--name", ".."], "one path segment"),
        (["sweep", "configs/cartpole_ppo.yaml", "--select", "val/accuracy"], "METRIC:max or"),
        (["sweep", "--resume", "/nonexistent/sweep"], "not a sweep directory"),
    ],
)
def test_bad_sweeps_are_one_error_line_before_anything_runs(tmp_path, capsys, args, pattern):
    import re

    from regrl.trainers.cli import EXIT_BAD_INPUT, main

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert (
            main(
                [*args, "--set", f"runs_root={tmp_path}"]
                if len(args) > 1 and args[1] != "--resume"
                else args
            )
            == EXIT_BAD_INPUT
        )
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert err.startswith("error:") and re.search(pattern, err), err
    assert not (tmp_path / "sweeps").exists()


def test_sweep_refuses_a_metadrive_env_in_the_trial_thread(tmp_path):
    """MetaDrive installs a signal handler, which only works in a main thread: a sweep of a RIFT
    config with num_env_runners: 0 is refused up front, naming the fix, and creates nothing."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regrl.trainers.cli",
            "sweep",
            str(root / "configs/rift_ppo.yaml"),
            "--seeds",
            "1",
            "--set",
            "resources.num_env_runners=0",
            "--set",
            f"runs_root={tmp_path / 'runs'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert proc.returncode == 2, proc.stderr
    assert "resources.num_env_runners >= 1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


# ---- several configs: the arms of one sweep -----------------------------------------------------
def _arm_file(directory: Path, stem: str, lr: float, kind_text: str = "") -> Path:
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "cartpole_ppo.yaml").read_text())
    raw.setdefault("training", {})["lr"] = lr
    path = directory / f"{stem}.yaml"
    path.write_text(kind_text or yaml.safe_dump(raw))
    return path


def test_several_configs_are_arms_with_the_same_seeds(tmp_path):
    from regrl.trainers.sweep import make_spec

    a, b = _arm_file(tmp_path, "base_arm", 1e-3), _arm_file(tmp_path, "other_arm", 5e-4)
    sweep_dir, spec = make_spec(
        [str(a), str(b)],
        2,
        ["training.num_epochs=1,2"],
        [f"runs_root={tmp_path}"],
        "arms",
        [],
        None,
    )
    labels = [t["label"] for t in spec["trials"]]
    assert labels == [
        "base_arm,num_epochs=1",
        "base_arm,num_epochs=1",
        "base_arm,num_epochs=2",
        "base_arm,num_epochs=2",
        "other_arm,num_epochs=1",
        "other_arm,num_epochs=1",
        "other_arm,num_epochs=2",
        "other_arm,num_epochs=2",
    ]
    # each arm keeps its own config (lr) and every arm runs the same seeds
    lrs = {t["arm"]: t["config"]["training"]["lr"] for t in spec["trials"]}
    assert lrs == {"base_arm": 1e-3, "other_arm": 5e-4}
    seeds = {arm: sorted({t["seed"] for t in spec["trials"] if t["arm"] == arm}) for arm in lrs}
    assert seeds["base_arm"] == seeds["other_arm"] == [0, 1]
    assert spec["configs"] == [str(a), str(b)] and sweep_dir.parent.name == "arms"
    # the grouping keeps the arms apart
    recs = [
        dict(t, status="finished", metrics={"m": float(i)}, error=None)
        for i, t in enumerate(spec["trials"])
    ]
    points = aggregate(recs)
    assert [p["arm"] for p in points] == ["base_arm"] * 2 + ["other_arm"] * 2
    assert [p["n"] for p in points] == [2, 2, 2, 2]


@pytest.mark.parametrize(
    "stems, name, text, pattern",
    [
        (("x", "x"), "n", "", "x is given twice"),
        (("x", "y"), None, "", "name it with --name"),
        (
            ("x", "y"),
            "n",
            "kind: offline\ndata: {path: d.npz}\n",
            "arms of one sweep are of one kind",
        ),
    ],
)
def test_bad_arm_sets_are_refused(tmp_path, stems, name, text, pattern):
    from regrl.trainers.sweep import make_spec

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _arm_file(tmp_path / "a", stems[0], 1e-3)
    second = _arm_file(tmp_path / "b", stems[1], 1e-3, text)
    with pytest.raises(ConfigError, match=pattern):
        make_spec([str(first), str(second)], 1, [], [f"runs_root={tmp_path}"], name, [], None)
    assert not (tmp_path / "sweeps").exists()


def test_markdown_compares_points_in_one_table():
    points = aggregate(
        [
            dict(_rec("a_seed0", 0, "finished", {"acc": 1.0}), label="a"),
            dict(_rec("a_seed1", 1, "finished", {"acc": 3.0}), label="a"),
            dict(_rec("b_seed0", 0, "finished", {"acc": 5.0}), label="b"),
        ]
    )
    md = render_markdown("s", points, ["acc", "absent"])
    assert "| point | n | acc |" in md
    assert "| a | 2 | 2 ± 12.71 |" in md and "| b | 1 | 5 (n=1, no interval) |" in md
    assert "absent" not in md


# ---- --select: the search's outcome, chosen on a held-out metric ------------------------------
def _sel(label, seed, metrics, status="finished", arm=None):
    return dict(_rec(f"{label}_seed{seed}", seed, status, metrics), label=label, arm=arm)


def test_parse_select():
    from regrl.trainers.sweep import parse_select

    assert parse_select(None) is None
    assert parse_select("tune/loss:min") == ("tune/loss", "min")
    assert parse_select("a:b:max") == ("a:b", "max")
    for bad in ("tune/loss", "tune/loss:low", ":max"):
        with pytest.raises(ConfigError, match="expected METRIC:max or METRIC:min"):
            parse_select(bad)


def test_select_per_seed_chooses_on_the_metric_and_reports_the_chosen_trials():
    from regrl.trainers.sweep import select_per_seed

    trials = [
        _sel("a", 0, {"tune": 0.5, "test": 0.1}),
        _sel("b", 0, {"tune": 0.2, "test": 0.9}),
        _sel("a", 1, {"tune": 0.3, "test": 0.2}),
        _sel("b", 1, {"tune": 0.4, "test": 0.8}),
        _sel("c", 1, {}, status="failed"),
    ]
    (low,) = select_per_seed(trials, "tune", "min")
    assert [(c["seed"], c["label"]) for c in low["chosen"]] == [(0, "b"), (1, "a")]
    assert low["chosen"][1]["missing"] == ["c"] and low["chosen"][0]["missing"] == []
    assert low["n"] == 2 and low["metrics"]["test"]["per_seed"] == {"0": 0.9, "1": 0.2}
    assert low["metrics"]["test"]["mean"] == pytest.approx(0.55)
    (high,) = select_per_seed(trials, "tune", "max")
    assert [c["label"] for c in high["chosen"]] == ["a", "b"]
    # a tie goes to the earlier grid point; arms are separate searches
    tied = [_sel("a", 0, {"m": 1.0}, arm="x"), _sel("b", 0, {"m": 1.0}, arm="x"),
            _sel("a", 0, {"m": 0.0}, arm="y"), _sel("b", 0, {"m": 2.0}, arm="y")]  # fmt: skip
    x, y = select_per_seed(tied, "m", "max")
    assert (x["arm"], x["chosen"][0]["label"]) == ("x", "a")
    assert (y["arm"], y["chosen"][0]["label"]) == ("y", "b")
    (none,) = select_per_seed([_sel("a", 0, {"other": 1.0})], "m", "max")
    assert none["n"] == 0 and none["chosen"][0]["label"] is None


def test_serial_offline_sweep_selects_on_the_tuning_split(tmp_path, blob_file, capsys):
    """regrl sweep --serial (no Ray: the trials run in this process) with --select: the trials
    report tune/* (rows held out of the training rows), results.json and results.md hold each
    seed's choice, and a failing grid point is recorded without stopping the others."""
    import yaml

    from regrl.trainers.cli import main

    config = tmp_path / "blob.yaml"
    raw = _offline_raw(tmp_path / "x", blob_file, epochs=2)
    raw["data"]["tune_fraction"] = 0.2
    config.write_text(yaml.safe_dump({k: v for k, v in raw.items() if k != "name"}))
    missing = tmp_path / "late.npz"
    code = main(["sweep", str(config), "--serial", "--seeds", "2", "--name", "sel",
                 "--grid", "training.lr=0.01,0.0001", "--grid", f"data.path={blob_file},{missing}",
                 "--set", f"runs_root={tmp_path}", "--select", "tune/loss:min"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "FAILED" in out
    sweep_dir = _sweep_dir(out)
    body = json.loads((sweep_dir / "results.json").read_text())
    assert body["select"] == "tune/loss:min" and "4/8 trials finished" in out
    done = [t for t in body["trials"] if t["status"] == "finished"]
    assert len(done) == 4 and all("late.npz" not in t["name"] for t in done)
    (sel,) = body["selection"]
    for c in sel["chosen"]:
        losses = {
            p["label"]: p["metrics"]["tune/loss"]["per_seed"][str(c["seed"])]
            for p in body["points"]
            if p["n"]
        }
        assert c["label"] == min(losses, key=losses.get) and c["value"] == losses[c["label"]]
        assert len(c["missing"]) == 2  # the two points without their data file
    assert sel["n"] == 2 and sel["metrics"]["val/accuracy"]["ci95"] is not None
    assert {"tune/accuracy", "val/accuracy"} <= set(sel["metrics"])
    md = (sweep_dir / "results.md").read_text()
    assert "## Selected by tune/loss (min), per seed" in md and "- seed 1: lr=" in md


def test_serial_refuses_ray_flags(tmp_path, capsys):
    from regrl.trainers.cli import EXIT_BAD_INPUT, main

    code = main(["sweep", str(ROOT / "configs/offline_digits.yaml"), "--serial",
                 "--max-concurrent", "2", "--set", f"runs_root={tmp_path}"])  # fmt: skip
    assert code == EXIT_BAD_INPUT and "--serial runs the trials" in capsys.readouterr().err
