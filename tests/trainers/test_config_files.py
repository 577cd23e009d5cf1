"""Every experiment file in ``configs/`` resolves to the values recorded in
``tests/trainers/resolved_configs.json``: the resolved mapping (every default filled in) that
its kind's schema gives, read the way a run's saved config is read (``Driver.parse``; ``regrl
validate`` prints the same mapping after also probing the environment). The snapshot was
taken before the config code was split into its modules (issue 23), so the split provably
changed no value; it keeps catching a default, a schema or a file that changes by accident.

A deliberate change (a new default, an edited or new file) updates the snapshot, and the diff
of the JSON file shows every value that changed:

    REGRL_UPDATE_RESOLVED=1 .venv/bin/pytest tests/trainers/test_config_files.py
"""

import json
import os
from pathlib import Path

import pytest

from regrl.trainers.config_yaml import read_yaml
from regrl.trainers.kinds import KINDS, kind_of_data

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
SNAPSHOT = Path(__file__).with_name("resolved_configs.json")
NOT_EXPERIMENTS = {"cluster/local.yaml": "a Ray cluster launcher file (ray up), not a regrl config"}
UPDATE = os.environ.get("REGRL_UPDATE_RESOLVED") == "1"


def experiment_files():
    files = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
    return [f for f in files if f not in NOT_EXPERIMENTS]


def resolved(rel: str):
    """The resolved mapping of ``configs/<rel>`` through its kind's schema, as JSON data."""
    path = CONFIGS / rel
    raw = read_yaml(path)
    driver = KINDS.get(kind_of_data(raw))
    return json.loads(json.dumps(driver.dump(driver.parse(raw, str(path)))))


def test_snapshot_is_current():
    """Writes the snapshot under REGRL_UPDATE_RESOLVED=1; otherwise checks it names only
    files that exist (a removed file is removed from the snapshot by the update)."""
    if UPDATE:
        body = {rel: resolved(rel) for rel in experiment_files()}
        SNAPSHOT.write_text(json.dumps(body, indent=1) + "\n")
    stale = set(json.loads(SNAPSHOT.read_text())) - set(experiment_files())
    assert not stale, (
        f"configs gone from configs/: {sorted(stale)}; update the snapshot ({__doc__})"
    )


@pytest.mark.parametrize("rel", experiment_files())
def test_config_file_resolves_to_its_snapshot(rel):
    """Catches a changed default, a field renamed or dropped, a schema that reads a value
    differently (an int read as a float, a term's parameters lost) or a kind dispatched to
    another schema: any of them changes the resolved mapping of some shipped file."""
    snapshot = json.loads(SNAPSHOT.read_text())
    got = resolved(rel)  # also: every shipped file is valid
    if rel not in snapshot:
        pytest.skip(f"{rel} is new: add it to the snapshot (REGRL_UPDATE_RESOLVED=1)")
    assert got == snapshot[rel]
