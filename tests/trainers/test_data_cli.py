"""regrl data (data files of the example configs) and output-directory creation on a fresh
clone (issue 12 §4, §6)."""

from unittest import mock

import numpy as np
import pytest

from regrl.trainers.cli import main
from regrl.trainers.data_cli import atomic_output, make_hint


def test_data_digits_writes_the_file_offline_digits_reads(tmp_path, capsys):
    out = tmp_path / "fresh" / "data" / "digits.npz"  # parents do not exist yet
    assert main(["data", "digits", "--out", str(out)]) == 0
    with np.load(out) as f:
        x, y = f["x"], f["y"]
    assert x.shape == (1797, 64) and x.dtype == np.float32 and 0 <= x.min() < x.max() <= 1
    assert y.shape == (1797,) and y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    assert sorted(p.name for p in out.parent.iterdir()) == ["digits.npz"]  # no temporary file
    assert str(out) in capsys.readouterr().out

    from regrl.trainers.offline import read_arrays

    assert read_arrays(out, "auto", ["x", "y"])["x"].shape == (1797, 64)


def test_missing_digits_file_names_the_command(tmp_path):
    from regrl.trainers.offline import read_arrays

    with pytest.raises(ValueError, match=r"make it with: regrl data digits --out .*digits\.npz"):
        read_arrays(tmp_path / "data" / "digits.npz", "auto", ["x", "y"])
    assert make_hint(tmp_path / "other.npz") == ""


def test_atomic_output_keeps_the_old_file_on_failure(tmp_path):
    out = tmp_path / "d.npz"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(out) as fh:
            fh.write(b"half")
            raise RuntimeError("interrupted")
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["data", "digitz"], "unknown data set 'digitz'. Did you mean 'digits'"),
        (["data", "digits", "--out", "x.csv"], "--out must end in .npz"),
        (["data", "digits", "--out", "f/d.npz"], "a file is in the way of its parent directory"),
        (["traffic", "demos", "--out", "f/d.npz"], "a file is in the way of its parent directory"),
    ],
)
def test_data_bad_input(argv, pattern, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("a file, not a directory")
    with mock.patch(
        "regrl.envs.traffic.demos.record_demos", side_effect=AssertionError("recorded")
    ):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_traffic_demos_creates_missing_parent_directories(tmp_path, capsys):
    """A fresh clone has no data/: the RIFT guide's first command (docs/rift_guide.md) must still work."""
    data = {"obs": np.zeros((3, 4), np.float32), "speed": np.zeros(5, np.float32)}
    out = tmp_path / "data" / "traffic_demos.npz"
    with mock.patch("regrl.envs.traffic.demos.record_demos", return_value=data):
        assert main(["traffic", "demos", "--episodes", "1", "--out", str(out)]) == 0
    with np.load(out) as f:
        assert f["obs"].shape == (3, 4) and "spec" in f.files
    assert sorted(p.name for p in out.parent.iterdir()) == ["traffic_demos.npz"]
