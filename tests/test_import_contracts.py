"""The layer rules of docs/architecture.md as import-linter contracts (`.importlinter`), run on this tree.

agents and envs never import trainers or ray; agents never imports envs; no import cycles
inside trainers. grimp sees function-level imports too, so a lazy import cannot hide a cycle.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
CONTRACTS = (
    "agents and envs never import trainers or ray",
    "agents never imports envs",
    "no import cycles inside trainers",
    "regrl.files imports no regrl package and no ray",
)
# the console script `lint-imports`, called through this interpreter so the venv's copy runs
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint(root: Path) -> subprocess.CompletedProcess:
    """Run `lint-imports` with the repo's contract file over the packages found in `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", LINT, str(CONFIG), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def installed_layout(tmp: Path) -> Path:
    """``tmp/regrl/`` as the wheel lays it out (``regrl/__init__.py`` plus the three folders,
    here as links): grimp finds a package's modules on the file system, and in the checkout
    the folders sit beside ``regrl/``, mapped in only by setuptools' ``package-dir``."""
    pkg = tmp / "regrl"
    pkg.mkdir()
    for module in (ROOT / "regrl").glob("*.py"):  # __init__.py and the shared files module
        (pkg / module.name).write_text(module.read_text())
    for folder in ("agents", "envs", "trainers"):
        (pkg / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return tmp


def test_every_contract_is_kept(tmp_path):
    proc = lint(installed_layout(tmp_path))
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    for name in CONTRACTS:
        assert f"{name} KEPT" in report, report


def make_lint_imports(checkout: Path) -> subprocess.CompletedProcess:
    """``make lint-imports`` in ``checkout``, as a user runs it from the repository root."""
    venv = Path(sys.executable).parent.parent
    return subprocess.run(
        ["make", "-s", "lint-imports", f"VENV={venv}"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_lint_imports_keeps_every_contract():
    """The command docs/architecture.md gives works from the repository root."""
    proc = make_lint_imports(ROOT)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    for name in CONTRACTS:
        assert f"{name} KEPT" in report, report


def test_make_lint_imports_fails_on_a_forbidden_import(tmp_path):
    """A checkout laid out like this one (regrl/__init__.py beside agents/, envs/, trainers/)
    whose agents import trainers: the make target exits non-zero and names the contract."""
    for name in ("Makefile", ".importlinter"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    _write(
        tmp_path,
        {
            "regrl/__init__.py": "",
            "regrl/files.py": "",
            "agents/__init__.py": "",
            "agents/loss.py": "import regrl.trainers.a\n",
            "envs/__init__.py": "",
            "trainers/__init__.py": "",
            "trainers/a.py": "import regrl.agents.loss\n",
        },
    )
    proc = make_lint_imports(tmp_path)
    report = proc.stdout + proc.stderr
    assert proc.returncode != 0, report
    assert f"{CONTRACTS[0]} BROKEN" in report, report


def _write(root: Path, files: dict) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# a miniature tree that keeps every rule; each case below adds one forbidden import to it
CLEAN = {
    "regrl/__init__.py": "",
    "regrl/files.py": "import os\n",
    "regrl/agents/__init__.py": "",
    "regrl/agents/loss.py": "import math\n",
    "regrl/envs/__init__.py": "",
    "regrl/envs/sim.py": "import math\n",
    "regrl/trainers/__init__.py": "",
    "regrl/trainers/a.py": "import ray\nimport regrl.agents.loss\n",
    "regrl/trainers/b.py": "import regrl.trainers.a\nimport regrl.envs.sim\n",
    "ray/__init__.py": "",
}
BREAKS = {
    "envs imports ray (function level)": (
        "regrl/envs/sim.py",
        "def f():\n    import ray\n",
        CONTRACTS[0],
    ),
    "agents imports trainers": ("regrl/agents/loss.py", "import regrl.trainers.a\n", CONTRACTS[0]),
    "agents imports envs": ("regrl/agents/loss.py", "from regrl.envs import sim\n", CONTRACTS[1]),
    "the files module imports envs": ("regrl/files.py", "import regrl.envs.sim\n", CONTRACTS[3]),
    "trainers cycle (function level)": (
        "regrl/trainers/a.py",
        "def f():\n    import regrl.trainers.b\n",
        CONTRACTS[2],
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_contract_file_catches_a_forbidden_import(tmp_path, case):
    """The contracts themselves can fail: one added import breaks exactly its contract."""
    _write(tmp_path, CLEAN)
    assert lint(tmp_path).returncode == 0, "the miniature tree must keep every contract"
    rel, extra, broken = BREAKS[case]
    _write(tmp_path, {rel: (tmp_path / rel).read_text() + extra})
    proc = lint(tmp_path)
    report = proc.stdout + proc.stderr
    assert proc.returncode != 0, report
    assert f"{broken} BROKEN" in report, report
    for name in set(CONTRACTS) - {broken}:
        assert f"{name} KEPT" in report, report


def _help_modules(skip) -> list:
    """``regrl --help`` in a fresh interpreter (minus the domain CLIs in ``skip``): which of
    torch and ray it imported."""
    code = (
        "import sys, runpy\n"
        "import regrl.trainers.cli as cli\n"
        f"cli.DOMAIN_CLIS = tuple(m for m in cli.DOMAIN_CLIS if m not in {tuple(skip)!r})\n"
        "sys.argv = ['regrl', '--help']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: regrl" in proc.stdout, proc.stdout
    return proc.stdout.strip().splitlines()[-1]


def test_cli_help_imports_no_ray():
    """`regrl --help` stays fast and works without a Ray session: no command module imports
    ray when its parser is built."""
    assert "ray" not in _help_modules(skip=())


def test_cli_help_imports_no_torch():
    """The core CLI and every domain CLI defer torch to their handlers; `regrl turbulence`,
    whose flags come from dataclasses of torch modules, builds them only when it is run
    (regrl.trainers.lazy_parser)."""
    assert _help_modules(skip=()) == "[]"


# one config per backend family: RLlib (rl), Ray Train (offline), Ray core actors (rlvr)
VALIDATED = (
    "configs/cartpole_ppo.yaml",
    "configs/offline_digits.yaml",
    "configs/rlvr_tiny_grpo.yaml",
)


def test_validate_imports_neither_ray_nor_rllib():
    """`regrl validate CONFIG` loads the kind's driver and checks the config (the rl driver
    builds the environment once) without Ray: each kind imports its backend when a run or an
    evaluation starts. One fresh interpreter validates the configs in turn and reports, after
    each, whether ray or ray.rllib is imported (a module stays imported, so the first config
    that imports one is the one named)."""
    code = (
        "import sys, contextlib, io\n"
        "from regrl.trainers.cli import main\n"
        f"for config in {VALIDATED!r}:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        rc = main(['validate', config])\n"
        "    assert rc == 0 and out.getvalue().startswith(config + ': OK'), (config, rc)\n"
        "    print(config, sorted(m for m in ('ray', 'ray.rllib') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [f"{config} []" for config in VALIDATED], proc.stdout
