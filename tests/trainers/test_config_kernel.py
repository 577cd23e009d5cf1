"""One config kernel (issue 12 §3): every kind extends one base, spells "where does the learner
run" as ``resources.num_gpus_per_learner``, refuses the old spellings with a message that
names the new key, and named lists parse through a field marker, not a special case."""

import dataclasses
from dataclasses import dataclass, field
from typing import Tuple

import pytest

from regrl.trainers.config import (
    ConfigError,
    ExperimentConfig,
    LearnerResources,
    NamedSpec,
    RunConfig,
    config_from_dict,
    named_list,
    parse,
    to_dict,
)
from regrl.trainers.offline import OfflineConfig, offline_config_from_dict
from regrl.trainers.rlvr import config as rlvr_config
from regrl.trainers.rlvr.config import RLVRConfig, SFTConfig
from regrl.trainers.traffic.pretrain import PretrainConfig

KIND_CLASSES = {
    "rl": ExperimentConfig,
    "rlvr": RLVRConfig,
    "sft": SFTConfig,
    "offline": OfflineConfig,
    "planner": PretrainConfig,
}


def load_kind(kind: str, resources: dict):
    """A minimal valid raw config of ``kind`` with the given ``resources`` mapping."""
    if kind == "rl":
        return config_from_dict({"resources": resources})
    if kind in ("rlvr", "sft"):
        return rlvr_config.config_from_dict({"kind": kind, "resources": resources})
    if kind == "offline":
        return offline_config_from_dict(
            {"kind": "offline", "data": {"path": "x.npz"}, "resources": resources}
        )
    return parse(PretrainConfig, {"kind": "planner", "resources": resources})


def test_the_kinds_are_the_registered_kinds():
    """Catches a kind added to the registry without a config class on the shared base."""
    from regrl.trainers.kinds import KINDS

    assert set(KINDS.names()) == set(KIND_CLASSES)


@pytest.mark.parametrize("kind", sorted(KIND_CLASSES))
def test_every_kind_extends_the_shared_base(kind):
    """Catches a kind whose schema re-declares name/seed/runs_root/checkpoint on its own (the
    four spellings this issue removes): its config and resources extend the shared bases."""
    cls = KIND_CLASSES[kind]
    assert issubclass(cls, RunConfig)
    cfg = cls() if kind != "offline" else load_kind(kind, {})
    assert cfg.kind == kind
    assert isinstance(cfg.resources, LearnerResources)
    shared = {f.name for f in dataclasses.fields(RunConfig)}
    assert shared <= {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("kind", sorted(KIND_CLASSES))
def test_every_kind_accepts_num_gpus_per_learner_and_derives_the_device(kind):
    """Catches a kind that still reads its own GPU key: 0 is CPU everywhere; > 0 is CUDA
    (except the planner, which trains on CPU and says so)."""
    cfg = load_kind(kind, {"num_gpus_per_learner": 0, "torch_threads": 1})
    assert cfg.resources.num_gpus_per_learner == 0
    assert cfg.resources.device == "cpu"
    assert cfg.resources.torch_threads == 1
    if kind == "planner":
        with pytest.raises(ConfigError, match="num_gpus_per_learner must be 0"):
            load_kind(kind, {"num_gpus_per_learner": 1})
        return
    gpu = load_kind(kind, {"num_gpus_per_learner": 1})
    assert gpu.resources.device == "cuda"
    assert to_dict(gpu)["resources"]["num_gpus_per_learner"] == 1.0


@pytest.mark.parametrize(
    "kind, old",
    [
        ("offline", {"use_gpu": True}),
        ("rlvr", {"learner_device": "cuda"}),
        ("rlvr", {"learner_num_gpus": 1}),
        ("sft", {"device": "cuda"}),
        ("rl", {"device": "cuda"}),
    ],
)
def test_an_old_gpu_spelling_names_the_new_key(kind, old):
    """Catches an old file silently ignored or refused with a useless 'did you mean': the
    one error names resources.num_gpus_per_learner."""
    with pytest.raises(ConfigError) as info:
        load_kind(kind, old)
    msg = str(info.value)
    assert f"unknown key {next(iter(old))!r}" in msg
    assert "resources.num_gpus_per_learner" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("kind", ["sft", "planner"])
def test_a_top_level_device_or_torch_threads_names_the_resources_key(kind):
    """SFT's top-level ``device`` and ``torch_threads`` and the planner's ``torch_threads``
    moved under ``resources``."""
    data = {"kind": kind, "torch_threads": 2}
    with pytest.raises(ConfigError, match=r"torch_threads.*now spelt resources\.torch_threads"):
        if kind == "sft":
            rlvr_config.config_from_dict(data)
        else:
            parse(PretrainConfig, data)
    if kind == "sft":
        with pytest.raises(ConfigError, match="now spelt resources.num_gpus_per_learner"):
            rlvr_config.config_from_dict({"kind": "sft", "device": "cuda"})


# ------------------------------------------------------------------ named lists by metadata
class _Registry(dict):
    def get(self, name):  # noqa: D102 - the registry protocol of parse_named_entry
        return self[name]

    def unknown_message(self, name):
        return f"unknown widget {name!r}; known: {', '.join(self)}"


@dataclass(frozen=True)
class _ScaleParams:
    factor: float = 1.0
    """A number."""

    def __post_init__(self):
        if self.factor <= 0:
            raise ValueError("factor must be > 0")


_WIDGETS = _Registry(scale=_ScaleParams)


@dataclass(frozen=True)
class _Widget(NamedSpec):
    """One widget."""


@dataclass(frozen=True)
class _Box:
    widgets: Tuple[_Widget, ...] = field(
        default=(), metadata=named_list(_WIDGETS, lambda p: p, _Widget, "widget", "scale")
    )
    """Widgets, each ``{name: ..., <params>}``."""


def test_a_named_list_field_declared_by_metadata_parses():
    """Catches a parser that only knows ObjectiveConfig.terms: any dataclass declares a named
    list through field metadata and gets parsing, errors and to_dict for free."""
    box = parse(_Box, {"widgets": [{"name": "scale", "factor": 2}, {"name": "scale"}]})
    assert box.widgets == (_Widget("scale", _ScaleParams(2.0)), _Widget("scale", _ScaleParams()))
    assert to_dict(box) == {
        "widgets": [{"name": "scale", "factor": 2.0}, {"name": "scale", "factor": 1.0}]
    }
    with pytest.raises(ConfigError, match=r"widgets\[0\]\.name: unknown widget 'scal'"):
        parse(_Box, {"widgets": [{"name": "scal"}]})
    with pytest.raises(ConfigError, match=r"widgets\[1\]: factor must be > 0"):
        parse(_Box, {"widgets": [{"name": "scale"}, {"name": "scale", "factor": -1}]})
    with pytest.raises(ConfigError, match=r"widgets: expected a non-empty list of widgets"):
        parse(_Box, {"widgets": {"name": "scale"}})


def test_the_parser_has_no_objective_special_case():
    """The terms of kind rl and kind rlvr and the offline plugins are marked fields."""
    import inspect

    from regrl.trainers import config_kernel, config_objective

    assert "ObjectiveConfig" not in inspect.getsource(config_kernel)
    for cls, name in (
        (config_objective.ObjectiveConfig, "terms"),
        (rlvr_config.RLVRObjective, "terms"),
        (OfflineConfig, "plugins"),
    ):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        assert config_kernel.NAMED_LIST in f.metadata
