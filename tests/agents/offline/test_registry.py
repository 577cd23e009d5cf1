"""The plugin registry, the protocol and the combination rules."""

import dataclasses

import pytest

import regrl.agents.offline as offline
from regrl.agents.offline import PLUGINS, check_combination, get_plugin
from regrl.agents.registry import UnknownNameError

ALL = {
    "elr",
    "pskd",
    "mixup",
    "nested_dropout",
    "coteaching",
    "stablemax",
    "orthograd",
    "lipschitz",
    "dispersive",
    "compander",
    "ignite",
    "glad",
    "self_distill",
    "hft",
    "orthogonality",
    "msbreg",
    "soft_equivariance",
    "stn",
    "pg_noise_mask",
    "ftwt",
    "ensemble_distill",
    "mask_tuning",
}


def test_every_method_is_registered_with_a_paper_header():
    assert set(PLUGINS.names()) == ALL
    for entry in PLUGINS:
        cls = entry.obj
        assert dataclasses.is_dataclass(cls.Params) and cls.Params.__dataclass_params__.frozen
        module = __import__(cls.__module__, fromlist=["_"])
        first = module.__doc__.splitlines()[0]
        assert "arXiv" in first or "NeurIPS" in first, (cls.name, first)


def test_unknown_name_suggests_nearest():
    with pytest.raises(UnknownNameError, match="Did you mean 'elr'"):
        get_plugin("elrr")


def test_public_helpers_importable():
    for name in ("stablemax_cross_entropy", "elr_penalty", "pskd_targets"):
        assert callable(getattr(offline, name))


@pytest.mark.parametrize(
    "names, task, match",
    [
        (["elr", "mixup"], "classification", "cannot be combined"),
        (["pskd", "self_distill"], "classification", "both provide soft targets"),
        (["lipschitz", "compander"], "classification", "cannot be combined"),
        (["ignite"], "classification", "does not apply to task 'classification'"),
        (["elr", "elr"], "classification", "listed twice"),
    ],
)
def test_bad_combinations(names, task, match):
    with pytest.raises(ValueError, match=match):
        check_combination(names, task)


def test_single_process_only_plugins():
    with pytest.raises(ValueError, match="num_workers: 0"):
        check_combination(["coteaching"], "classification", data_parallel=True)
    check_combination(["elr", "glad", "stablemax"], "classification", data_parallel=True)


def test_params_validate_ranges():
    with pytest.raises(ValueError, match="beta"):
        get_plugin("elr").Params(beta=1.2)
    with pytest.raises(ValueError, match="forget_rate"):
        get_plugin("coteaching").Params(forget_rate=1.0)
