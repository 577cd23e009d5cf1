"""Every offline plugin names its paper where users look: `regrl list` (the registry's
description, the class docstring's first line) and the README's plugin paragraph."""

import re
from pathlib import Path

from regrl.agents.offline import PLUGINS

ROOT = Path(__file__).resolve().parents[3]
CITATION = re.compile(r"\([^()]*(?:et al\.|&)[^()]*\b(?:19|20)\d\d\b")  # (Name et al. 2020)


def test_regrl_list_names_every_plugins_paper():
    missing = [e.name for e in PLUGINS if not CITATION.search(e.description)]
    assert not missing, f"descriptions without '(Author et al. YEAR)': {missing}"


def test_readme_lists_every_plugin_with_its_paper():
    text = " ".join((ROOT / "README.md").read_text().split())
    missing = [
        name
        for name in PLUGINS.names()
        if not re.search(rf"`{name}` [^`]*?\((?:[^()]*et al\.|[^()]*&)[^()]*(?:19|20)\d\d", text)
    ]
    assert not missing, f"README does not list these plugins with a paper: {missing}"
