"""The repository stands on its own: no tracked file cites material outside it, and every
citation of the method notes names a section that exists in docs/methods.md.

Code cites methods as ``docs/methods.md#<section>`` (docs pages: ``methods.md#<section>``),
never a numbered section of a notes file that is not in the repository, the design notes of
the workspace the project was written in, or a path above the checkout.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path
from typing import List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHODS = ROOT / "docs" / "methods.md"
# built from pieces so that this file does not match its own patterns
OUTSIDE = [
    re.compile(r"\.\./" + "shared"),
    re.compile("DESIGN" + r"\.md"),
    re.compile(r"methods\.md\s*" + "\u00a7"),  # a numbered section instead of docs/methods.md#...
    re.compile(r"reference/" + r"methods\.md"),
]
ANCHOR = re.compile(r"methods\.md#([a-z0-9-]+)")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".sh", ".cfg", ".json", ""}


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    text = unicodedata.normalize("NFKC", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> Set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.M)}


def outside_citations(text: str) -> List[str]:
    """The matches of every pattern that points outside the repository."""
    return [m.group(0) for pat in OUTSIDE for m in pat.finditer(text)]


def missing_anchors(text: str, known: Set[str]) -> List[str]:
    return [a for a in ANCHOR.findall(text) if a not in known]


def tracked_files() -> List[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = [ROOT / p for p in out.decode().split("\0") if p]
    return [p for p in paths if p.is_file() and p.suffix in TEXT_SUFFIXES]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


def test_no_tracked_file_cites_material_outside_the_repository():
    bad = [
        f"{p.relative_to(ROOT)}: {hit}"
        for p in tracked_files()
        if p != Path(__file__).resolve()
        for hit in outside_citations(_read(p))
    ]
    assert not bad, "cite docs/methods.md#<section> or docs/architecture.md instead:\n" + "\n".join(
        bad
    )


def test_every_methods_citation_names_an_existing_section():
    known = anchors(METHODS.read_text(encoding="utf-8"))
    bad = [
        f"{p.relative_to(ROOT)}: methods.md#{a}"
        for p in tracked_files()
        for a in missing_anchors(_read(p), known)
    ]
    assert not bad, f"sections not in docs/methods.md (known: {sorted(known)}):\n" + "\n".join(bad)


def broken_links(page: Path) -> List[str]:
    """Relative Markdown links of ``page`` (outside code blocks) whose file, or whose
    ``#anchor`` in a Markdown file, does not exist."""
    text = re.sub(r"```.*?```", "", _read(page), flags=re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path) if path else page
        if not dest.exists():
            bad.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(_read(dest)):
            bad.append(target)
    return bad


def test_every_relative_link_in_the_docs_resolves():
    """Links between README.md and docs/ pages (and their #sections) point at files of the
    checkout; pages written by a command of docs/results.yaml are that command's business."""
    from regrl.trainers.results import load_manifest, output_index

    generated = set(output_index(load_manifest(ROOT)))
    bad = [
        f"{p.relative_to(ROOT)}: {target}"
        for p in tracked_files()
        if p.suffix == ".md" and p.relative_to(ROOT).as_posix() not in generated
        for target in broken_links(p)
    ]
    assert not bad, "broken links:\n" + "\n".join(bad)


def undocumented(names, notes: str) -> List[str]:
    """The names that docs/methods.md never mentions as ``name`` (in backticks)."""
    return [n for n in names if f"`{n}`" not in notes]


def test_every_objective_term_and_offline_plugin_has_method_notes():
    """A term or plugin added to a registry gets its section in docs/methods.md (paper,
    equations, defaults, deviations) in the same change."""
    from regrl.agents.objectives.terms import TERMS
    from regrl.agents.offline import PLUGINS

    notes = METHODS.read_text(encoding="utf-8")
    missing = undocumented(TERMS.names(), notes) + undocumented(PLUGINS.names(), notes)
    assert not missing, f"not in docs/methods.md: {missing}"


def test_the_checks_can_fail():
    """Each pattern flags what it is for, and leaves the project's own citations alone."""
    for text in (
        "see ../" + "shared/reference",
        "(" + "DESIGN" + ".md)",
        "(methods.md " + "\u00a7" + "1.2)",
        "docs/methods.md " + "\u00a7" + "2",
    ):
        assert outside_citations(text), text
    assert outside_citations("(docs/methods.md#rift-loss, docs/architecture.md)") == []
    known = anchors("# Notes\n## RIFT\n### RIFT loss\n## Lp-Reg\n")
    assert known == {"notes", "rift", "rift-loss", "lp-reg"}
    assert missing_anchors("docs/methods.md#rift-loss and methods.md#lp-reg", known) == []
    typo = "rift" + "-los"  # built from pieces: this file is checked too
    assert missing_anchors("docs/methods.md#" + typo, known) == [typo]
    assert undocumented(["elr", "new_plugin"], "the plugin `elr` (ELR)") == ["new_plugin"]


def test_broken_links_are_found(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n## Two words\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#two-words) [ok](#here) [web](https://x.org/y.md)\n"
        "[gone](c.md) [no section](a.md#three)\n```\n[in code](d.md)\n```\n# Here\n"
    )
    assert broken_links(page) == ["c.md", "a.md#three"]
