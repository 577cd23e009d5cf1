"""Run-directory checkpoints: atomic writes, discovery of the latest one, pruning."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

STATE_FILE = "regrl_state.json"
PREFIX = "iter_"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> List[Path]:
    """Complete checkpoints of a run, oldest first (a half-written one has no state file)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def read_state(ckpt: Path) -> Dict[str, Any]:
    return json.loads((Path(ckpt) / STATE_FILE).read_text())


def save_checkpoint(save_fn, run_dir: Path, iteration: int, state: Dict[str, Any],
                    keep: int) -> Path:
    """``save_fn(path)`` writes the algorithm; we add the state file and rename atomically."""
    root = checkpoint_dir(run_dir).resolve()  # pyarrow wants absolute paths
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{iteration:06d}"
    tmp = root / f".tmp_{final.name}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_fn(str(tmp))
    (tmp / STATE_FILE).write_text(json.dumps(dict(state, iteration=iteration), indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def module_checkpoint_path(path: Path, module_id: str) -> Path:
    """Resolve a run dir, an algorithm checkpoint or an RLModule dir to the module's dir."""
    path = Path(path).resolve()  # pyarrow wants absolute paths
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if checkpoint_dir(path).is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"run {path} has no complete checkpoint yet")
        path = latest
    for candidate in (path / "learner_group" / "learner" / "rl_module" / module_id,
                      path / "rl_module" / module_id, path / module_id, path):
        if (candidate / "class_and_ctor_args.pkl").is_file():
            return candidate
    raise FileNotFoundError(f"no RLModule {module_id!r} found under {path}")
