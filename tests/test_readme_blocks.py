"""The README's command blocks run as a new user would run them (issue 12 §6), wherever they
live: the README and the guide pages of :data:`PAGES` that took over its domain sections.

Every command of every ```bash block of those pages must match a rule of :data:`RULES` (first
match wins), so they cannot gain a command nobody runs. A rule runs the command as written, runs it
with small settings appended (argparse and ``--set`` take the last value), runs another
command in its place, or skips it for a stated reason.

- default suite: every command matches a rule, and the cheap read-only commands run;
- ``-m slow``: a fresh ``git clone`` of HEAD runs every command in page order, each distinct
  command once (later blocks use the files and runs of earlier ones; ``runs/NAME/<timestamp>``
  becomes the newest run of NAME), with the repository's venv and the clone's code.

Extend :data:`RULES` when a page gains a command, and :data:`PAGES` when a command block moves
to a new page: put specific patterns before general ones.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PAGES = (
    "README.md",
    "docs/smarl_guide.md",
    "docs/rift_guide.md",
    "docs/rlvr_guide.md",
    "docs/offline.md",
    "docs/cluster.md",
)
"""The pages whose command blocks are a new user's, in the order a newcomer reads them: the
README, then the guides that took over its sections (same order as they stood in it)."""
NOT_RUN = {
    "docs/rift.md": "experiment notes: records of how each RIFT number was made, with their "
    "own settings (docs/results.yaml reruns them)",
    "docs/closures.md": "experiment notes: the commands behind the closures table "
    "(docs/results.yaml entry closures)",
    "docs/rlvr_experiment.md": "experiment notes: the RLVR sweeps (docs/results.yaml reruns them)",
    "docs/rlvr.md": "experiment notes of the first RLVR round; its commands are the guide's "
    "(docs/rlvr_guide.md) or need the SmolLM2 weights",
    "docs/smarl.md": "experiment notes: records of how each SMARL number was made "
    "(docs/results.yaml reruns them)",
    "docs/sweeps.md": "the sweep reference: its first command is the README's; the others need "
    "a cluster, a sweep directory of the reader's, or 12 trials",
}
"""Pages linked from the README or a guide whose command blocks are not a newcomer's to run."""


@dataclass(frozen=True)
class Rule:
    pattern: str
    """Regular expression matched at the start of the command (comments stripped)."""
    action: str
    """``cheap``: read-only and quick, run by the default suite too; ``run``: run as written;
    ``small``: run with ``append`` added; ``instead``: run ``append`` in its place;
    ``skip``: never run (``why`` says why)."""
    append: str = ""
    why: str = ""


SMARL_SMALL = (
    "--set training.iterations=1 --set training.train_batch_size=160 "
    "--set training.minibatch_size=160 --set training.num_epochs=1 "
    "--set env.kwargs.episode_actions=10 --set eval.kwargs.time_units=0.05 "
    "--set eval.kwargs.spinup=0.02 --set eval.kwargs.seeds=1"
)
RIFT_SMALL = (
    "--set training.iterations=1 --set training.train_batch_size=32 "
    "--set training.minibatch_size=16 --set training.num_epochs=1 "
    "--set env.kwargs.horizon=16 --set resources.num_env_runners=0 "
    "--set eval.kwargs.episodes=1 --set eval.kwargs.blocks=1"
)
PLACEHOLDER = r".*(\b(CONFIG|RUN_DIR|PATH|NAME|DIR|JOB_ID|N|S)\b|\.\.\.|\[--)"

RULES: List[Rule] = [
    # cluster and cloud commands: need an AWS account and a running cluster
    Rule(
        r"(ray (up|down|dashboard|attach|exec|job) |export RAY_AUTH_MODE|tensorboard --logdir "
        r"/home/ubuntu)",
        "skip",
        why="needs a Ray cluster (cloud account); tests/cluster "
        "covers placement, faults and ray job submit on one machine",
    ),
    # Kubernetes: an image registry and a cluster with the KubeRay operator
    Rule(
        r"(docker (build|push) |kubectl )",
        "skip",
        why="needs an image registry and a Kubernetes cluster with KubeRay; "
        "tests/cluster/test_kuberay.py checks the manifest against cluster.yaml",
    ),
    # usage synopses (the Commands section): placeholders in capitals, [--options], "..."
    Rule(PLACEHOLDER, "skip", why="usage synopsis with placeholders, not a runnable command"),
    Rule(r"make test\b", "skip", why="the test suite itself"),
    Rule(
        r"make tb\b",
        "skip",
        why="a server that runs until stopped; tests/test_make_tb.py starts it and checks that "
        "it listens on loopback only",
    ),
    Rule(
        r"make demo\b",
        "instead",
        "regrl train configs/smarl_hyper_finetune.yaml --eval "
        + SMARL_SMALL
        + " --set env.kwargs.sims=1 --set env.kwargs.spinup=0.02",
        why="make would (re)install the venv; this is its recipe at small settings",
    ),
    Rule(
        r"regrl train configs/rlvr_arith_",
        "skip",
        why="needs the SmolLM2 weights (make smollm2, ~100 MB)",
    ),
    Rule(r"regrl (list|rlvr terms|results$|text sample |validate configs/)", "cheap"),
    Rule(r"regrl train configs/cartpole_", "small", "--set training.iterations=1"),
    Rule(r"regrl eval runs/cartpole_", "small", "--episodes 1"),
    Rule(r"regrl sweep configs/cartpole_ppo\.yaml --seeds", "small", "--set training.iterations=1"),
    Rule(
        r"regrl train configs/(smarl_turb2d|smarl_demo|smarl_demo_reg|smarl_finetune)\.yaml",
        "small",
        SMARL_SMALL,
    ),
    Rule(
        r"regrl train configs/smarl_hyper\.yaml",
        "small",
        SMARL_SMALL + " --set env.kwargs.sims=1 --set env.kwargs.spinup=0.02",
    ),
    Rule(
        r"regrl turbulence fit ",
        "small",
        "--iterations 1 --sims 1 --unroll 20 --spinup 0.01 --eval-sims 1 --eval-time 0.05 "
        "--eval-spinup 0.01",
    ),
    Rule(
        r"\.venv/bin/python benchmarks/turbulence_family_scan\.py",
        "small",
        "--sims 1 --time 0.05 --spinup 0.01",
    ),
    Rule(
        r"\.venv/bin/python benchmarks/turbulence_dns_floor\.py",
        "small",
        "--against= --sims 1 --time 0.05 --spinup 0.01 --n-dns 128 --threads 1",
    ),
    Rule(r"regrl eval runs/smarl_", "small", "--episodes 1"),
    Rule(r"regrl eval data/turbulence/policies/\w+\.pt", "small", "--episodes 1"),
    Rule(r"regrl export runs/smarl_\w+/<timestamp> --out runs/", "run"),
    Rule(r"regrl turbulence pretrain-policy --dataset", "run"),
    Rule(
        r"regrl sweep configs/smarl_demo\.yaml configs/smarl_demo_reg\.yaml",
        "skip",
        why="the SMARL experiment: 6 trainings (~15 min on 2 cores); "
        "tests/trainers/test_smarl.py runs its configs at toy scale",
    ),
    Rule(
        r"(nice -n 5 )?\.venv/bin/python benchmarks/(smarl_sac|turbulence_seeds|"
        r"turbulence_closure_cost)\.py",
        "skip",
        why="a benchmark of docs/smarl.md (minutes to an hour); docs/results.yaml lists it",
    ),
    Rule(
        r"regrl turbulence dataset --out",
        "small",
        "--n-dns 128 --snapshots 2 --heldout-snapshots 1 --train-trajectories 1 "
        "--heldout-trajectories 1 --spinup-time 0.02 --sample-every 0.02",
    ),
    Rule(
        r"regrl turbulence compare --dataset",
        "small",
        "--snapshots 1,2 --seeds 1 --time-units 0.04 --spinup 0.02 --local-steps 5 --cnn-steps 2",
    ),
    Rule(r"regrl traffic demos --episodes \d+ --out", "small", "--episodes 2 --horizon 80"),
    Rule(r"regrl traffic pretrain configs/", "small", "--set epochs=1"),
    Rule(r"regrl train configs/rift_", "small", RIFT_SMALL),
    Rule(r"regrl eval runs/rift_", "small", "--episodes 1"),
    Rule(r"regrl traffic compare runs/", "small", "--episodes 1"),
    Rule(r"regrl text demos --task \w+ --n \d+ --seed \d+ --out data/", "run"),
    Rule(r"regrl train configs/sft_arith\.yaml", "small", "--set training.epochs=1"),
    Rule(
        r"regrl train configs/rlvr_tiny_",
        "small",
        "--set training.steps=2 --set eval.every=1 --set eval.prompts=4",
    ),
    Rule(r"regrl data \w+", "run"),
    Rule(r"\.venv/bin/python benchmarks/noisy_labels\.py --write-data ", "run"),
    Rule(r"regrl train configs/offline_digits\.yaml", "small", "--set training.epochs=2"),
]


def readme_commands(text: str) -> List[str]:
    """The commands of the ```bash blocks, in order: continuation lines joined, comments and
    blank lines dropped, quoting kept as written."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines():
            line = re.sub(r"(^|\s)#\s.*$", "", line).strip()
            if line:
                commands.append(line)
    return commands


def rule_for(command: str) -> Optional[Rule]:
    return next((r for r in RULES if re.match(r.pattern, command)), None)


def _readme() -> List[str]:
    """The commands of every page of :data:`PAGES`, in order, each distinct command once."""
    commands: List[str] = []
    for page in PAGES:
        commands += [c for c in readme_commands((ROOT / page).read_text()) if c not in commands]
    return commands


def test_every_readme_command_has_a_rule():
    missing = [c for c in _readme() if rule_for(c) is None]
    assert not missing, (
        "README/guide commands no rule of tests/test_readme_blocks.py covers (add "
        "one: run, small settings or a stated skip):\n" + "\n".join(missing)
    )


def test_every_linked_page_with_commands_is_covered_or_named():
    """A page linked from the README or a guide that holds ```bash blocks is either one of
    :data:`PAGES` or named in :data:`NOT_RUN` with the reason, so a block moved out of the
    README cannot fall out of this test."""
    linked = set()
    for page in PAGES:
        text = (ROOT / page).read_text()
        base = Path(page).parent
        for target in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)", text):
            path = (base / target).as_posix()
            linked.add(re.sub(r"^(\./)+", "", path).replace("docs/../", ""))
    with_blocks = {
        p for p in linked if (ROOT / p).is_file() and readme_commands((ROOT / p).read_text())
    }
    uncovered = sorted(with_blocks - set(PAGES) - set(NOT_RUN))
    assert not uncovered, f"add these pages to PAGES (or NOT_RUN with a reason): {uncovered}"


def test_rules_parse_and_order():
    """The parser keeps quoting and joins continuations; specific rules beat the synopsis."""
    text = (
        "```bash\nregrl train configs/offline_digits.yaml --set 'plugins=[{name: a}]'  "
        "# note\nregrl turbulence compare --dataset d.npz \\\n    --out o\n```\n"
        "```\nregrl not-bash\n```\n"
    )
    assert readme_commands(text) == [
        "regrl train configs/offline_digits.yaml --set 'plugins=[{name: a}]'",
        "regrl turbulence compare --dataset d.npz --out o",
    ]
    assert rule_for(readme_commands(text)[0]).action == "small"
    assert rule_for("regrl train CONFIG --set x=1").action == "skip"
    assert rule_for("regrl frobnicate configs/x.yaml") is None


def _run(command: str, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _env(code_root: Path) -> dict:
    return dict(
        os.environ,
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(code_root),
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
    )


def test_cheap_readme_commands_run():
    cheap = [c for c in _readme() if (rule_for(c) or Rule("", "")).action == "cheap"]
    failed = []
    for command in cheap:
        proc = _run(command, ROOT, _env(ROOT), 300)
        if proc.returncode != 0:
            failed.append(f"{command}: exit {proc.returncode}\n{proc.stderr[-1500:]}")
    assert not failed, "\n".join(failed)


def resolve_runs(command: str, cwd: Path) -> str:
    """``runs/NAME/<timestamp>`` (or ``<ts>``, NAME may be a glob) -> the newest run directory
    of each matching experiment, each directory once per command."""
    seen: List[str] = []

    def newest(match: re.Match) -> str:
        out = []
        for exp in sorted(glob.glob(str(cwd / match.group(1)))):
            runs = sorted(p for p in Path(exp).iterdir() if p.is_dir())
            rel = str(runs[-1].relative_to(cwd)) if runs else match.group(0)
            if rel not in seen:
                seen.append(rel)
                out.append(rel)
        return " ".join(out) or match.group(0)

    return re.sub(r"(\S+)/<(?:timestamp|ts)>", newest, command)


def planned(command: str, cwd: Path) -> Optional[str]:
    """What the slow test runs for a README command (None: skipped)."""
    rule = rule_for(command)
    if rule.action == "skip":
        return None
    if rule.action == "instead":
        return rule.append
    line = resolve_runs(command, cwd)
    return f"{line} {rule.append}".strip() if rule.action == "small" else line


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)  # every README command of a fresh clone, each up to 1200 s
def test_readme_blocks_run_on_a_fresh_clone(tmp_path):
    clone = tmp_path / "regrl"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(VENV_BIN.parent)  # what `make setup` made for the README user
    env, failed, log = _env(clone), [], []
    for command in _readme():
        line = planned(command, clone)
        if line is None:
            log.append(f"skip  {command}  ({rule_for(command).why})")
            continue
        try:
            proc = _run(line, clone, env, 1200)
            ok, tail = proc.returncode == 0, proc.stderr[-1500:] or proc.stdout[-1500:]
        except subprocess.TimeoutExpired:
            ok, tail = False, "timed out after 1200 s"
        log.append(f"{'ok' if ok else 'FAIL':<5} {line}")
        if not ok:
            failed.append(f"{line}\n{tail}")
    print("\n".join(log))
    assert not failed, "README commands that failed on a fresh clone:\n\n" + "\n\n".join(failed)
