"""The wheel owns one top-level import name, ``regrl`` (issue 12 §4): the folders agents/,
envs/ and trainers/ install as regrl.agents, regrl.envs and regrl.trainers, never as the
generic names that unrelated PyPI packages use."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("agents", "envs", "trainers")


def _setuptools_table() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_under_the_regrl_namespace():
    listed = set(_setuptools_table()["packages"])
    on_disk = {"regrl"} | {
        "regrl." + ".".join(p.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for p in (ROOT / folder).rglob("__init__.py")
    }
    assert listed == on_disk, (
        f"missing from pyproject: {sorted(on_disk - listed)}; "
        f"listed but not on disk: {sorted(listed - on_disk)}"
    )
    assert all(name == "regrl" or name.startswith("regrl.") for name in listed)


def test_package_dir_maps_the_top_level_folders_into_regrl():
    mapping = _setuptools_table()["package-dir"]
    assert mapping == {"regrl": "regrl", **{f"regrl.{f}": f for f in FOLDERS}}


def test_no_module_imports_the_bare_top_level_names():
    """``import agents`` would work from a checkout and fail from the wheel."""
    bad = []
    for folder in (*FOLDERS, "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                words = line.split()
                if (
                    len(words) >= 2
                    and words[0] in ("import", "from")
                    and words[1].split(".")[0] in FOLDERS
                ):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "bare top-level imports:\n" + "\n".join(bad)


@pytest.mark.slow
def test_built_wheel_holds_only_regrl(tmp_path):
    """Build the wheel (pip, no dependencies) and read its top-level names."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=600,
    )
    wheel = next(tmp_path.glob("regrl-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {
        "regrl",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }, tops
