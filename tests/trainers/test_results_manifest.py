"""docs/results.yaml: every table and figure of README.md and docs/ has a command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from regrl.trainers.checks import ConfigError
from regrl.trainers.results import find_root, load_manifest, output_index, run_entry

ROOT = Path(__file__).resolve().parents[2]
# pages that quote no measured result: how the code is laid out, what bad input gets
REFERENCE_PAGES = ("docs/architecture.md", "docs/bad_input.md", "docs/scale_out.md")


def test_every_figure_and_results_page_in_docs_comes_from_a_command():
    """A figure or data file in docs/ is an output of an entry; a page is an output or
    quotes one (``quoted_in``), so no table in docs/ is typed in without a command."""
    reg = load_manifest(ROOT)
    produced = output_index(reg)
    quoting = {q for e in reg for q in e.obj.quoted_in}
    orphans = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "docs").iterdir())
        if p.suffix in (".png", ".json", ".md")
    ]
    orphans = [p for p in orphans if p not in {*produced, *quoting, *REFERENCE_PAGES}]
    assert not orphans, f"docs/ files with no docs/results.yaml entry: {orphans}"
    assert "README.md" in quoting


def test_every_quoting_document_exists():
    """``quoted_in`` names documents of this checkout (a page renamed or merged into another
    must be renamed in the manifest too)."""
    missing = [
        f"{e.name}: {q}"
        for e in load_manifest(ROOT)
        for q in e.obj.quoted_in
        if not (ROOT / q).is_file()
    ]
    assert not missing, missing


def test_every_output_and_script_of_the_manifest_exists():
    reg = load_manifest(ROOT)
    for e in reg:
        for out in e.obj.outputs:
            assert (ROOT / out).exists(), f"{e.name}: output {out} is not in the checkout"
        for step in e.obj.steps:
            for script in re.findall(r"(benchmarks/\w+\.py|configs/[\w/]+\.yaml)", step):
                assert (ROOT / script).is_file(), f"{e.name}: {script} does not exist"


def test_run_entry_reports_outputs_a_step_did_not_write(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/results.yaml").write_text(
        "a:\n  steps: ['echo 1 > docs/a.txt']\n  outputs: [docs/a.txt, docs/b.txt]\n  minutes: 1\n"
    )
    reg = load_manifest(find_root(tmp_path / "docs"))
    assert run_entry(reg.get("a"), tmp_path) == ["docs/b.txt"]
    assert (tmp_path / "docs/a.txt").read_text() == "1\n"


def test_failing_step_and_bad_manifest_are_config_errors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/results.yaml").write_text(
        "a:\n  steps: ['false', 'echo never > x']\n  outputs: [x]\n  minutes: 1\n"
    )
    with pytest.raises(ConfigError, match="step 1 exited"):
        run_entry(load_manifest(tmp_path).get("a"), tmp_path)
    assert not (tmp_path / "x").exists()
    (tmp_path / "docs/results.yaml").write_text("a:\n  steps: []\n  outputs: [x]\n  minutes: 1\n")
    with pytest.raises(ConfigError, match="steps"):
        load_manifest(tmp_path)


def test_cli_lists_entries_and_refuses_unknown_names():
    cli = [sys.executable, "-m", "regrl.trainers.cli", "results"]
    out = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "cartpole_stock" in out.stdout
    bad = subprocess.run(
        [*cli, "cartpole_stok"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "did you mean 'cartpole_stock'" in bad.stderr.lower()
    assert "Traceback" not in bad.stderr
