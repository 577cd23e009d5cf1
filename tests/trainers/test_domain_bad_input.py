"""Issue 15, domain tools: bad arguments and bad files get one ``error:`` line and exit status 2
from the real ``regrl`` entry point (a subprocess), before any long computation starts; what
the tools write is checked first and written atomically.

Each case the issue names runs in a subprocess; further argument checks call ``main`` in-process
(the same handler, without paying the ~2 s torch import again).
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from regrl.envs.turbulence import reference as reference_mod
from regrl.envs.turbulence.reference import load_reference, save_reference
from regrl.trainers.cli import EXIT_BAD_INPUT, main

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "envs" / "turbulence" / "data" / "reference_kf4.npz"
# A real but tiny reference run (32² DNS -> 16² LES, ~1 s); a bad flag given after it wins.
TINY = [
    "--n-dns",
    "32",
    "--n-les",
    "16",
    "--nu",
    "1e-3",
    "--dt",
    "2e-3",
    "--spinup-time",
    "1",
    "--average-time",
    "0.5",
    "--sample-every",
    "0.1",
    "--n-init",
    "4",
    "--pdf-bins",
    "41",
]


def regrl(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    return subprocess.run(
        [sys.executable, "-m", "regrl.trainers.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_error(proc: subprocess.CompletedProcess, pattern: str) -> str:
    """Exit 2, no traceback, exactly one ``error:`` line, containing ``pattern``."""
    assert proc.returncode == EXIT_BAD_INPUT, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and pattern in errors[0], proc.stderr[-3000:]
    return errors[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def packaged_arrays() -> dict:
    with np.load(PACKAGED, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------ turbulence reference
@pytest.mark.parametrize(
    "bad, pattern",
    [
        (["--dt", "0"], "dt must be a finite number > 0"),
        (["--dt", "-1"], "dt must be a finite number > 0"),
        (["--nu", "nan"], "nu must be a finite number > 0"),
        pytest.param(
            ["--device", "cuda"],
            "--device cuda: not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
    ],
)
def test_reference_bad_argument_is_one_error_line_and_writes_nothing(tmp_path, bad, pattern):
    out = tmp_path / "ref.npz"
    one_error(regrl("turbulence", "reference", "--out", out, *TINY, *bad), pattern)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (["--spinup-time", "-1"], "spinup_time must be a finite number >= 0"),
        (["--spinup-time", "inf"], "spinup_time must be a finite number >= 0"),
        (["--average-time", "1e12"], "<= 1e+08"),  # 5e14 steps: would never finish
        (["--n-init", "0"], "n_init must be an integer >= 1"),
        (["--filter", "box"], "filter must be 'spectral' or 'gaussian'"),
        (["--dt", "0.05"], "CFL bound"),  # 32² grid: dx/|u| = 0.0196
        (["--n-les", "64"], "n_les must be <= n_dns"),
        (["--n-les", "18"], "kf must be < n_les/3"),  # with --kf 6 below
        (["--n-dns", "33"], "must be even"),
        (["--pdf-bins", "1"], "pdf_bins must be an integer >= 2"),
        (["--dtype", "float16"], "dtype must be"),
        (["--threads", "0"], "--threads must be in 1.."),
        (["--device", "nonsense"], "is not a torch device"),
        (["--out", "ref.txt"], "--out must end in .npz"),
    ],
)
def test_reference_arguments_checked_before_the_simulation(
    tmp_path, monkeypatch, capsys, bad, pattern
):
    monkeypatch.chdir(tmp_path)
    extra = ["--kf", "6"] if "18" in bad else []
    started = mock.Mock(side_effect=AssertionError("the DNS started"))
    with mock.patch("regrl.envs.turbulence.reference.generate_reference", started):
        assert main(["turbulence", "reference", *TINY, *extra, *bad]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err and err.count("\n") == 1, err
    assert not started.called and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "field, value",
    [("n_dns", 10**400), ("nu", 10**400), ("n_dns", "64"), ("dt", None), ("n_init", True)],
)
def test_check_spec_refuses_wrong_types_and_ints_beyond_float(field, value):
    from regrl.envs.turbulence.reference import ReferenceSpec, check_spec

    with pytest.raises(ValueError, match=f"{field} must be"):
        check_spec(ReferenceSpec(**{field: value}))


def test_reference_out_must_not_be_a_directory(tmp_path, capsys):
    assert main(["turbulence", "reference", *TINY, "--out", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "must end in .npz" in capsys.readouterr().err
    (tmp_path / "d.npz").mkdir()
    assert main(["turbulence", "reference", *TINY, "--out", str(tmp_path / "d.npz")]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_reference_default_output_is_a_user_path_not_the_packaged_file(tmp_path, monkeypatch):
    """The default output lies under the working directory; the packaged reference (here a
    stand-in, so that a regression cannot overwrite the real one) is left alone."""
    stand_in = tmp_path / "packaged" / "reference_kf4.npz"
    stand_in.parent.mkdir()
    stand_in.write_bytes(PACKAGED.read_bytes())
    before, packaged_before = sha(stand_in), sha(PACKAGED)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with mock.patch.object(reference_mod, "DEFAULT_REFERENCE", stand_in):
        assert main(["turbulence", "reference", *TINY]) == 0
    written = work / "data" / "turbulence" / "reference_kf4.npz"
    assert load_reference(written).n_les == 16
    assert sha(stand_in) == before and sha(PACKAGED) == packaged_before
    assert sorted(p.name for p in written.parent.iterdir()) == ["reference_kf4.npz"]


def test_save_reference_refuses_bad_values_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "ref.npz"
    target.write_bytes(PACKAGED.read_bytes())
    before = sha(target)
    for key, value in (
        ("enstrophy_spectrum", np.nan),
        ("initial_conditions", np.inf),
        ("pdf", -1.0),
    ):
        data = packaged_arrays()
        data[key] = np.full_like(data[key], value)
        with pytest.raises(ValueError, match=key):
            save_reference(target, data)
    data = packaged_arrays()
    data["energy_spectrum"] = data["energy_spectrum"][:-1]  # wrong shape
    with pytest.raises(ValueError, match="energy_spectrum must have shape"):
        save_reference(target, data)
    assert sha(target) == before and os.listdir(tmp_path) == ["ref.npz"]


def test_save_reference_is_atomic_when_writing_fails(tmp_path):
    target = tmp_path / "ref.npz"
    target.write_bytes(PACKAGED.read_bytes())
    before = sha(target)

    def half_written(fh, **arrays):
        fh.write(b"PK\x03\x04 truncated")
        raise OSError(28, "No space left on device")

    with mock.patch.object(reference_mod.np, "savez_compressed", half_written):
        with pytest.raises(OSError, match="No space left"):
            save_reference(target, packaged_arrays())
    assert sha(target) == before and os.listdir(tmp_path) == ["ref.npz"]
    save_reference(target, packaged_arrays())  # and a good write replaces it
    assert load_reference(target).n_les == 64


def test_a_reference_with_non_finite_values_is_refused_on_load(tmp_path):
    data = packaged_arrays()
    data["enstrophy_spectrum"] = np.full_like(data["enstrophy_spectrum"], np.nan)
    bad = tmp_path / "nan.npz"
    np.savez(bad, **data)
    with pytest.raises(ValueError, match="enstrophy_spectrum has 32 non-finite values"):
        load_reference(bad)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(PACKAGED.read_bytes()[:50_000])
    with pytest.raises(ValueError, match="not a valid turbulence reference"):
        load_reference(truncated)
    one_error(
        regrl("validate", "configs/smarl_demo.yaml", "--set", f"env.kwargs.reference={bad}"),
        "non-finite values",
    )


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (["--spinup-time", "inf"], "must be finite"),
        (["--dt", "nan"], "dt > 0"),
        (["--dt", "0.1"], "CFL bound"),
        (["--spinup-time", "1e6"], "steps"),  # 1.6e10 DNS steps
        (["--snapshots", "100000"], "snapshots in all"),
        (["--n-dns", "8192"], "--n-dns must be <= 4096"),
        (["--threads", "0"], "--threads must be in 1.."),
        (["--dns-cache", "cache"], "--dns-cache must end in .npz"),
        (["--out", "pairs.npy"], "--out must end in .npz"),
    ],
)
def test_dataset_arguments_checked_before_the_dns(tmp_path, monkeypatch, capsys, bad, pattern):
    monkeypatch.chdir(tmp_path)
    started = mock.Mock(side_effect=AssertionError("the DNS started"))
    with mock.patch("regrl.trainers.turbulence.closures.dataset_command", started):
        assert main(["turbulence", "dataset", "--out", "pairs.npz", *bad]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err, err
    assert not started.called


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (["--snapshots", "1,x"], "--snapshots must be comma-separated integers"),
        (["--snapshots", "0"], "--snapshots must be"),
        (["--time-units", "nan"], "--time-units must be > 0"),
        (["--time-units", "1e9"], "together <= 10000"),
        (["--spinup", "-1"], "--spinup >= 0"),
        (["--seeds", "0"], "--seeds must be in 1.."),
        (["--local-steps", "-5"], "--local-steps must be in 1.."),
        (["--rl-run", "no/such/run"], "--rl-run no/such/run: no such run directory"),
        (["--out", "a_file"], "is a file"),
    ],
)
def test_closure_compare_arguments_checked_first(tmp_path, monkeypatch, capsys, bad, pattern):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    started = mock.Mock(side_effect=AssertionError("the comparison started"))
    with mock.patch("regrl.trainers.turbulence.closures.compare_command", started):
        assert (
            main(["turbulence", "compare", "--dataset", "d.npz", "--out", "cmp", *bad])
            == EXIT_BAD_INPUT
        )
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err, err
    assert not started.called


# ------------------------------------------------------------------ text tasks
def _jsonl_bad_utf8(path: Path) -> None:
    path.write_bytes(b'{"prompt": "ok", "answer": 1}\n{"prompt": "caf\xe9\xff", "answer": 2}\n')


def _jsonl_deep(path: Path) -> None:
    path.write_text('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + ', "answer": 1}\n')


def _jsonl_huge(path: Path) -> None:  # 2 MB: beyond the line bound like the 50 MB
    path.write_text('{"prompt": "' + "x" * 2_000_000 + '", "answer": 1}\n')


@pytest.mark.parametrize(
    "make, pattern",
    [
        (_jsonl_bad_utf8, ":2: not valid UTF-8"),
        (_jsonl_deep, ":1: JSON nested too deeply"),
        (_jsonl_huge, ":1: line longer than"),
    ],
)
def test_bad_jsonl_file_is_one_error_line_naming_file_and_line(tmp_path, make, pattern):
    src = tmp_path / "tasks.jsonl"
    make(src)
    line = one_error(
        regrl("text", "sample", "--task", "jsonl", "--kw", f"path={src}"), f"{src}{pattern}"
    )
    assert len(line) < 400  # never the whole value


@pytest.mark.parametrize(
    "row, pattern",
    [
        ({"prompt": "p" * 9000, "answer": 1}, "'prompt' is 9000 characters long; at most 8192"),
        ({"prompt": "q", "answer": "9" * 2000}, "'answer' is 2000 characters long; at most 1024"),
        ({"prompt": "q", "answer": 1, "completion": "c" * 20_000}, "'completion' is 20000"),
        ({"prompt": ["x" * 5000], "answer": 1}, "'prompt' must be a non-empty string"),
        ({"p" * 5000: 1}, "missing key 'prompt'"),
    ],
)
def test_jsonl_values_are_bounded_and_never_echoed_in_full(tmp_path, capsys, row, pattern):
    import json

    src = tmp_path / "tasks.jsonl"
    src.write_text(json.dumps(row) + "\n")
    assert main(["text", "sample", "--task", "jsonl", "--kw", f"path={src}"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}:1: ") and pattern in err and len(err) < 500, err[:600]


def test_jsonl_integer_beyond_python_conversion_limit(tmp_path, capsys):
    src = tmp_path / "tasks.jsonl"
    src.write_text('{"prompt": "q", "answer": ' + "9" * 5000 + "}\n")
    assert main(["text", "sample", "--task", "jsonl", "--kw", f"path={src}"]) == EXIT_BAD_INPUT
    assert f"{src}:1: not valid JSON" in capsys.readouterr().err


def test_demos_out_existing_directory_is_an_error_and_leaves_no_tmp(tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    one_error(
        regrl("text", "demos", "--task", "arithmetic", "--n", "3", "--out", out), "is a directory"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert list(out.iterdir()) == []


def test_jsonl_write_failure_leaves_no_tmp_and_keeps_the_old_file(tmp_path):
    from regrl.trainers.rlvr.text_cli import write_jsonl_atomic

    as_dir = tmp_path / "a_dir"
    as_dir.mkdir()
    with pytest.raises(OSError):  # os.replace onto a directory
        write_jsonl_atomic(as_dir, [{"a": 1}])
    old = tmp_path / "old.jsonl"
    old.write_text("keep\n")

    def rows():
        yield {"a": 1}
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(old, rows())
    assert old.read_text() == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir", "old.jsonl"]


def test_countdown_unreachable_target_is_one_error_line():
    one_error(
        regrl(
            "text",
            "sample",
            "--task",
            "countdown",
            "--kw",
            "n_numbers=2",
            "--kw",
            "max_number=2",
            "--kw",
            "min_target=90",
        ),
        "cannot be reached",
    )


@pytest.mark.parametrize(
    "kws, pattern",
    [
        # 2 and 2 make 0, 1 or 4: within the max_number**n bound, found by no sample
        (["n_numbers=2", "min_number=2", "max_number=2", "min_target=3", "max_target=3"], "widen"),
        (["min_target=100", "max_target=10"], "min_target <= max_target"),
        (["max_target=-1", "min_target=-5"], "max_target >= 0"),
        (["min_target=a"], "must be integers"),
        (["max_number=null"], "must be integers"),
    ],
)
def test_countdown_bad_ranges_exit_2(capsys, kws, pattern):
    args = ["text", "sample", "--task", "countdown"]
    for kw in kws:
        args += ["--kw", kw]
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err, err


def test_text_n_and_seed_are_checked(tmp_path, capsys):
    assert main(["text", "sample", "--task", "arithmetic", "--n", "10000000"]) == EXIT_BAD_INPUT
    assert "--n must be >= 0 and <= 1000" in capsys.readouterr().err
    assert (
        main(
            [
                "text",
                "demos",
                "--task",
                "arithmetic",
                "--n",
                str(10**12),
                "--out",
                str(tmp_path / "d.jsonl"),
            ]
        )
        == EXIT_BAD_INPUT
    )
    assert "<= 1000000" in capsys.readouterr().err
    assert main(["text", "sample", "--task", "arithmetic", "--seed", "-1"]) == EXIT_BAD_INPUT
    assert "--seed must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["figure", "figure.weird", "."])
def test_rlvr_compare_out_must_be_an_image_file(tmp_path, monkeypatch, capsys, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run" / "tb").mkdir(parents=True)
    assert main(["rlvr", "compare", "run", "--out", out]) == EXIT_BAD_INPUT
    assert "--out must be an image file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written elsewhere


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (["--episodes", "10000000"], "--episodes must be >= 1 and <= 100000"),
        (["--horizon", "0"], "--horizon must be >= 1"),
        (["--seed", "-3"], "--seed must be in 0.."),
        (["--traffic-density", "nan"], "--traffic-density must be in [0, 1]"),
        (["--family", "highway"], "--family must be one of default, long"),
    ],
)
def test_traffic_demos_arguments_checked_before_metadrive(tmp_path, capsys, bad, pattern):
    started = mock.Mock(side_effect=AssertionError("MetaDrive started"))
    with mock.patch("regrl.envs.traffic.demos.record_demos", started):
        assert main(["traffic", "demos", "--out", str(tmp_path / "d.npz"), *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err, err
    assert not started.called


# ------------------------------------------------------------------ traffic compare
def _run_dir(tmp_path: Path, name: str, config_text) -> Path:
    d = tmp_path / name
    d.mkdir()
    if config_text is not None:
        (d / "config.yaml").write_text(config_text)
    return d


def test_compare_on_a_cartpole_run_is_one_error_line(tmp_path):
    run = _run_dir(tmp_path, "cartpole", (ROOT / "configs" / "cartpole_ppo.yaml").read_text())
    one_error(regrl("traffic", "compare", run, "--out", tmp_path / "cmp"), "not a RIFT run")
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize(
    "config_text, pattern",
    [
        (None, "not a regrl run directory (no config.yaml)"),
        ("- 1\n", "the top level must be a mapping"),
        ("a: [\n", "not valid YAML"),
        ("kind: rlvr\n", "not a RIFT run (kind 'rlvr'"),
    ],
)
def test_compare_refuses_non_rift_run_dirs(tmp_path, capsys, config_text, pattern):
    run = _run_dir(tmp_path, "run", config_text)
    assert main(["traffic", "compare", str(run), "--out", str(tmp_path / "c")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err, err


def test_compare_accepts_rift_rl_and_planner_run_dirs(tmp_path):
    from regrl.trainers.envs import ENVS
    from regrl.trainers.traffic import cli as traffic_cli
    from regrl.trainers.traffic.cli import check_rift_run

    assert set(traffic_cli.RIFT_ENVS) <= set(ENVS.names())
    for config in ("rift_ppo.yaml", "rift_demo_kl.yaml", "rift_pretrain.yaml"):
        check_rift_run(str(_run_dir(tmp_path, config, (ROOT / "configs" / config).read_text())))
    only_planner = _run_dir(tmp_path, "planner_only", None)
    (only_planner / "planner.pt").write_bytes(b"")
    check_rift_run(str(only_planner))
