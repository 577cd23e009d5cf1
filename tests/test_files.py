"""regrl/files.py: the atomic writer (old file intact and no temporary file after a failure
midway, fsync before the rename) and the commit reader (the checkout of regrl's source, not the
working directory; None, not an exception, outside a checkout)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from regrl import files
from regrl.files import atomic_output, commit_of, package_commit

ROOT = Path(__file__).resolve().parents[1]


def _git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def _checkout_head():
    """HEAD of the checkout regrl's tests run from, read without regrl.files."""
    try:
        _git(ROOT, "ls-files", "--error-unmatch", "regrl/__init__.py")
    except (OSError, subprocess.SubprocessError):
        pytest.skip("regrl does not run from a git checkout here")
    return _git(ROOT, "rev-parse", "HEAD")


@pytest.fixture
def other_repo(tmp_path):
    """A git repository with one commit, unrelated to regrl's."""
    repo = tmp_path / "other"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "other")
    return repo


# ---- the writer ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["wb", "w"])
def test_a_failure_midway_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, mode):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="No space"):
        with atomic_output(target, mode) as fh:
            fh.write(b"half" if mode == "wb" else "half")
            fh.flush()
            raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
    with pytest.raises(KeyboardInterrupt):  # an interrupt too
        with atomic_output(tmp_path / "new.bin") as fh:
            fh.write(b"x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_complete_write_replaces_the_file_with_normal_permissions(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"  # parent folders are created
    with atomic_output(target, "w") as fh:
        fh.write("ünï\n")
    assert target.read_text(encoding="utf-8") == "ünï\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert os.listdir(target.parent) == ["out.txt"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_output(target, "a"):
            pass


def test_the_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        # the file synced is the temporary one, and the target still holds the old data
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), target.read_bytes()))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    with atomic_output(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"new"
    name, before = synced[0]
    assert Path(name).name.startswith(".out.bin.") and before == b"old"


def test_write_text_atomic_replaces_whole_and_leaves_no_temporary(tmp_path, monkeypatch):
    """The text replaces the old file; a failing write (fsync raising) keeps the old text and
    leaves no temporary file (catches a direct ``write_text``)."""
    from regrl.files import write_text_atomic

    path = tmp_path / "eval.json"
    assert write_text_atomic(path, "{}") == path and path.read_text() == "{}"
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(path, '{"half": ')
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["eval.json"]


# ---- the commit reader ----------------------------------------------------------------------
def test_the_commit_is_the_package_checkout_s_from_any_working_directory(other_repo):
    """Run from another git repository, the commit is still regrl's (the bug was reading the
    working directory's repository)."""
    head = _checkout_head()
    code = "from regrl.files import package_commit as c; print(c()); print(c(short=True))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=other_repo, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    full, short = out.stdout.split()
    assert full == head != _git(other_repo, "rev-parse", "HEAD") and head.startswith(short)


def test_the_reference_records_the_package_commit(other_repo, monkeypatch):
    from regrl.envs.turbulence.reference import ReferenceSpec, _provenance

    head = _checkout_head()
    monkeypatch.chdir(other_repo)
    assert head.startswith(_provenance(ReferenceSpec(), "cpu", 1.0)["code_version"])


# ---- nobody else writes atomically or reads the commit ----------------------------------------
SOURCES = ("regrl", "agents", "envs", "trainers", "benchmarks")
DIRECTORY_SWAPS = {"trainers/checkpoint.py", "trainers/offline.py"}
"""Checkpoints are folders, renamed whole (atomic_output writes one file); nothing else here
may rename a file into place."""
HAND_ROLLED = re.compile(
    r"os\.replace\(|os\.rename\(|\b\w+\.(?:replace|rename)\(\w+\)|mkstemp\(|rev-parse|def git_commit"
)


def test_regrl_files_is_the_one_atomic_writer_and_the_one_commit_reader():
    """A temporary file renamed into place, or a git call, anywhere but regrl/files.py (the
    summary's fixed ``.summary.json.tmp``, the planner export's rename, a second commit
    reader that reads the working directory's repository) fails here."""
    found = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "regrl/files.py" or rel in DIRECTORY_SWAPS:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if HAND_ROLLED.search(line):
                    found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "use regrl.files.atomic_output / package_commit:\n" + "\n".join(found)


def test_no_commit_outside_a_checkout_or_without_git(tmp_path, other_repo, monkeypatch):
    assert commit_of(tmp_path) is None  # no repository at all
    untracked = other_repo / "site-packages" / "regrl"  # a package installed inside a checkout
    untracked.mkdir(parents=True)
    (untracked / "__init__.py").write_text("")
    assert commit_of(untracked) is None
    _git(other_repo, "add", ".")
    _git(other_repo, "commit", "-q", "-m", "track it")
    assert commit_of(untracked) == _git(other_repo, "rev-parse", "HEAD")
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert commit_of(untracked) is None and package_commit() is None
