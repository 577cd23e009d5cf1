"""``regrl results``: the manifest of every table, figure and number in README.md and docs/.

One YAML file (``docs/results.yaml``) maps a result's name to the shell steps that compute
it, the files they write, where the numbers are quoted, and the expected run time on the
reference machine (2 CPU cores). ``regrl results`` lists the entries; ``regrl results NAME``
reruns one in the repository root and checks that every output was rewritten.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from regrl.agents.registry import Registry
from regrl.trainers.checks import ConfigError

MANIFEST = Path("docs") / "results.yaml"
KEYS = ("steps", "outputs", "minutes", "quoted_in", "description")


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    """What the result shows, in one line."""
    steps: Tuple[str, ...]
    """Shell commands run in order from the repository root (bash -euo pipefail);
    ``regrl`` and ``python`` are the project's venv's."""
    outputs: Tuple[str, ...]
    """Files the steps (re)write, relative to the repository root."""
    minutes: float
    """Expected wall time on 2 CPU cores."""
    quoted_in: Tuple[str, ...]
    """Documents that quote the outputs' numbers."""


def find_root(start: Optional[Path] = None) -> Path:
    """The checkout holding the manifest (the results are files of a checkout, not of a wheel)."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / MANIFEST).is_file():
            return d
    raise ConfigError(
        f"no {MANIFEST} in {here} or above: run `regrl results` from a regrl checkout"
    )


def _entry(name: str, raw, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {name}: expected a mapping")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: {name}: unknown key {unknown[0]!r}; valid: {', '.join(KEYS)}")
    steps, outputs = raw.get("steps"), raw.get("outputs")
    for key, val in (("steps", steps), ("outputs", outputs)):
        if not (isinstance(val, list) and val and all(isinstance(v, str) for v in val)):
            raise ConfigError(f"{where}: {name}.{key}: expected a non-empty list of strings")
    minutes = raw.get("minutes")
    if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or minutes <= 0:
        raise ConfigError(f"{where}: {name}.minutes: expected a number > 0")
    return Entry(
        name,
        str(raw.get("description", "")),
        tuple(steps),
        tuple(outputs),
        float(minutes),
        tuple(raw.get("quoted_in") or ()),
    )


def load_manifest(root: Path) -> Registry:
    """The manifest as a registry (unknown names get "did you mean")."""
    from regrl.trainers.config_yaml import read_yaml  # lazy: PyYAML, not at --help

    path = root / MANIFEST
    reg = Registry("result")
    for name, raw in read_yaml(path).items():
        entry = _entry(str(name), raw, str(path))
        reg.register(entry.name, entry.description)(entry)
    return reg


def run_entry(entry: Entry, root: Path, *, dry_run: bool = False) -> List[str]:
    """Run the steps; return the outputs that were not rewritten (empty = all good)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local single-node runs
    before = {o: _mtime(root / o) for o in entry.outputs}
    for i, step in enumerate(entry.steps, 1):
        print(f"[{entry.name} {i}/{len(entry.steps)}] {step}", flush=True)
        if dry_run:
            continue
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", step], cwd=root, env=env)
        if proc.returncode:
            raise ConfigError(
                f"{entry.name}: step {i} exited with status {proc.returncode}: {step}"
            )
    if dry_run:
        return []
    return [o for o in entry.outputs if _mtime(root / o) in (None, before[o])]


def _mtime(path: Path) -> Optional[float]:
    return path.stat().st_mtime_ns if path.exists() else None


def list_entries(reg: Registry) -> str:
    lines = [f"{'name':<22} {'minutes':>7}  outputs"]
    for e in reg:
        lines.append(f"{e.name:<22} {e.obj.minutes:>7g}  {', '.join(e.obj.outputs)}")
        lines.append(f"{'':<31}{e.description}")
    return "\n".join(lines)


def add_cli(sub) -> None:
    p = sub.add_parser("results", help="list or regenerate the results quoted in README/docs")
    p.add_argument("name", nargs="?", help="entry of docs/results.yaml (omit to list them)")
    p.add_argument("--dry-run", action="store_true", help="print the steps, run nothing")
    p.set_defaults(handler=cmd_results)


def cmd_results(args) -> int:
    root = find_root()
    reg = load_manifest(root)
    if not args.name:
        print(list_entries(reg))
        return 0
    entry = reg.get(args.name)
    start = time.perf_counter()
    stale = run_entry(entry, root, dry_run=args.dry_run)
    if stale:
        raise ConfigError(f"{entry.name}: these outputs were not rewritten: {', '.join(stale)}")
    if not args.dry_run:
        print(
            f"{entry.name}: done in {(time.perf_counter() - start) / 60:.1f} min "
            f"(expected ~{entry.minutes:g}); outputs: {', '.join(entry.outputs)}"
        )
    return 0


def output_index(reg: Registry) -> Dict[str, str]:
    """output path -> entry name (a file is produced by one entry)."""
    return {o: e.name for e in reg for o in e.obj.outputs}
