"""Plugin registries (regrl.trainers.plugins): the core names its domain modules, imports them on the
first lookup, and each name the core relies on is registered by one of them."""

import sys

import pytest

from regrl.trainers.plugins import PluginRegistry

BASE = """from regrl.trainers.plugins import PluginRegistry
REG = PluginRegistry("thing", ("{plugin}",))
"""
PLUGIN = """from {base} import REG
REG.register("from_plugin", "registered by the plugin module")(42)
SEEN_DURING_IMPORT = REG.names()  # a lookup while loading must not recurse
"""


@pytest.fixture
def plugin_pair(tmp_path, monkeypatch, request):
    base, plugin = f"plugbase_{request.node.name}", f"plugmod_{request.node.name}"
    base, plugin = (n.replace("[", "_").replace("]", "_") for n in (base, plugin))
    (tmp_path / f"{base}.py").write_text(BASE.format(plugin=plugin))
    (tmp_path / f"{plugin}.py").write_text(PLUGIN.format(base=base))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__(base), plugin
    for name in (base, plugin):
        sys.modules.pop(name, None)


def test_plugins_load_on_first_lookup_only(plugin_pair):
    base, plugin = plugin_pair
    base.REG.register("local", "registered by the core")(1)
    assert plugin not in sys.modules  # defining and registering load nothing
    assert base.REG.get("from_plugin") == 42
    assert plugin in sys.modules
    assert sys.modules[plugin].SEEN_DURING_IMPORT == ("from_plugin", "local")


@pytest.mark.parametrize("lookup", ["get", "contains", "iter", "names", "unknown"])
def test_every_lookup_loads_the_plugins(plugin_pair, lookup):
    reg = plugin_pair[0].REG
    if lookup == "get":
        assert reg.get("from_plugin") == 42
    elif lookup == "contains":
        assert "from_plugin" in reg
    elif lookup == "iter":
        assert [e.name for e in reg] == ["from_plugin"]
    elif lookup == "names":
        assert reg.names() == ("from_plugin",)
    else:
        with pytest.raises(KeyError, match="from_plugin"):
            reg.get("from_plugn")


def test_a_missing_plugin_module_is_an_import_error():
    reg = PluginRegistry("thing", ("no_such_regrl_plugin_module",))
    with pytest.raises(ImportError):
        reg.get("x")


def test_the_core_registries_get_every_domain_entry():
    """Each name the core dispatches on is registered by a module of its plugin list."""
    from regrl.trainers.envs import ENVS
    from regrl.trainers.evaluate import EVALUATORS
    from regrl.trainers.kinds import KINDS
    from regrl.trainers.rllib.algo import MODULE_SPECS

    assert set(KINDS.names()) == {"rl", "rlvr", "sft", "offline", "planner"}
    assert {"smarl_turb2d", "rift_metadrive"} <= set(EVALUATORS.names())
    assert "rift_metadrive" in MODULE_SPECS
    assert {"rift_traffic", "rift_metadrive", "smarl_turb2d"} <= set(ENVS.names())
