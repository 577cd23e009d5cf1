"""A plain install (`pip install regrl`, no extras) runs every kind it can and names the extra
for the rest in one ``error:`` line (issue 12 §4).

The test venv has every extra, so a child process simulates the plain install: it hides every
module and distribution that ``regrl``'s core dependencies (pyproject.toml, walked through the
installed packages' metadata) do not bring in, then runs ``regrl.trainers.cli.main`` on the
commands below.
"""

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from packaging.requirements import Requirement

from regrl.trainers.checks import OPTIONAL_MODULES, missing_extra

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _pyproject() -> dict:
    import tomllib  # Python >= 3.11 (the test venv); the package itself needs only 3.10

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def closure(requirements) -> set:
    """Normalised names of the distributions ``requirements`` install (with their extras and
    environment markers), walked through the installed metadata."""
    seen, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (_norm(req.name), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = md.distribution(req.name).requires or []
        except md.PackageNotFoundError:
            continue
        for line in requires:
            sub = Requirement(line)
            extras = sorted(req.extras) or [""]
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return {name for name, _ in seen}


def plain_install_hidden():
    """(top-level modules, distributions) installed here that a plain install lacks."""
    keep = closure(_pyproject()["dependencies"]) | {"regrl"}
    dists = {_norm(d.metadata["Name"] or "") for d in md.distributions()} - keep
    modules = {
        m
        for m, owners in md.packages_distributions().items()
        if m.isidentifier() and not any(_norm(o) in keep for o in owners)
    }
    return sorted(modules), sorted(dists)


# Runs in the child: hide the modules (a finder that raises the error a missing module raises,
# unless the import resolves elsewhere, e.g. the psutil Ray vendors) and their metadata (RLlib
# asks importlib.metadata whether opencv is installed), then run each command.
CHILD = r"""
import contextlib, importlib.machinery, importlib.metadata, io, json, os, sys
HIDDEN, DISTS, SITE = set(sys.argv[1].split()), set(sys.argv[2].split()), sys.argv[3]

class PlainInstall:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if "." in name or name not in HIDDEN:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        where = spec and (spec.origin or next(iter(spec.submodule_search_locations or ()), None))
        if where and os.path.relpath(where, SITE).split(os.sep)[0].split(".")[0] == name:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, PlainInstall)
_discover = importlib.metadata.Distribution.discover.__func__
def _visible(cls, **kw):
    norm = lambda n: (n or "").lower().replace("_", "-").replace(".", "-")
    return (d for d in _discover(cls, **kw) if norm(d.metadata["Name"]) not in DISTS)
importlib.metadata.Distribution.discover = classmethod(_visible)

from regrl.trainers.cli import main
results = {}
for argv in json.loads(sys.argv[4]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    results[" ".join(argv)] = [rc, err.getvalue()]
for probe in ("metadrive", "transformers", "sklearn", "ray.rllib"):
    try:
        __import__(probe)
        results["import " + probe] = [0, ""]
    except ImportError as exc:
        results["import " + probe] = [1, str(exc)]
print("RESULTS " + json.dumps(results))
"""


def run_plain(commands, cwd=ROOT):
    hidden, dists = plain_install_hidden()
    site = str(Path(md.distribution("ray").locate_file("")))
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            " ".join(hidden),
            " ".join(dists),
            site,
            json.dumps(commands),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULTS ")]
    assert line, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[-1][len("RESULTS ") :])


def one_error_naming(result, extra: str) -> None:
    rc, err = result
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert f"pip install 'regrl[{extra}]'" in lines[0], err


def test_plain_install_names_the_extra_and_runs_the_rest(tmp_path):
    runs = tmp_path / "runs"
    cmds = {
        "traffic": ["validate", "configs/rift_ppo.yaml"],
        "lm": ["train", "configs/sft_arith.yaml", "--set", f"runs_root={runs}"],
        "offline": ["data", "digits", "--out", str(tmp_path / "data" / "digits.npz")],
        "smarl": ["validate", "configs/smarl_demo.yaml"],
        "list": ["list"],
    }
    out = run_plain(list(cmds.values()))
    # the simulation hides what the extras bring and keeps the core (RLlib)
    assert [out[f"import {m}"][0] for m in ("metadrive", "transformers", "sklearn")] == [1] * 3
    assert out["import ray.rllib"][0] == 0, out["import ray.rllib"]
    for extra in ("traffic", "lm", "offline"):
        one_error_naming(out[" ".join(cmds[extra])], extra)
    assert not runs.exists()  # the LM check comes before the run directory
    assert not (tmp_path / "data").exists()  # nor a data directory without its file
    for ok in ("smarl", "list"):
        assert out[" ".join(cmds[ok])] == [0, ""], out[" ".join(cmds[ok])]


def test_every_optional_module_comes_with_its_extra():
    """pyproject.toml's extra named for a module really installs that module."""
    extras = _pyproject()["optional-dependencies"]
    owners = md.packages_distributions()
    for module, (extra, _) in OPTIONAL_MODULES.items():
        assert extra in extras, f"{module}: no extra {extra!r} in pyproject.toml"
        dists = {_norm(d) for d in owners.get(module, [])}
        assert dists, f"{module} is not installed in the test venv"
        assert dists & closure(extras[extra]), f"regrl[{extra}] does not install {module}"
        assert not dists & closure(_pyproject()["dependencies"]), (
            f"{module} is a core dependency; it needs no extra"
        )


def test_only_optional_modules_become_error_lines(capsys):
    """A missing optional module is bad input (2); a missing core module is a bug (1)."""
    from regrl.trainers import cli

    assert "regrl[traffic]" in missing_extra(ModuleNotFoundError(name="metadrive.envs"))
    assert missing_extra(ModuleNotFoundError(name="numpy")) is None
    assert missing_extra(ImportError("metadrive")) is None
    for name, rc in (("transformers.models", 2), ("numpy", 1)):
        boom = mock.Mock(side_effect=ModuleNotFoundError(f"No module named {name!r}", name=name))
        with mock.patch.dict(cli.COMMANDS, {"list": boom}):
            assert cli.main(["list"]) == rc
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1].startswith("error:")
        assert ("Traceback" in err) == (rc == 1), err


def test_require_module_names_the_extra_of_a_missing_module():
    from regrl.trainers.checks import ConfigError, require_module

    require_module("sklearn")  # installed in the test venv: no error
    with mock.patch("importlib.util.find_spec", return_value=None):
        with pytest.raises(ConfigError, match=r"pip install 'regrl\[offline\]'"):
            require_module("sklearn")
