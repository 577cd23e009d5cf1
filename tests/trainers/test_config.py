"""Experiment schema: every config in configs/ validates; bad input gets a precise message."""

from pathlib import Path

import pytest
import yaml

from regrl.trainers.config import (
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    load_config,
    to_dict,
)
from regrl.trainers.rllib.terms import DemoKLParams, PolicyParams

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml"))


def write(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    from regrl.trainers.offline import load_offline_config
    from regrl.trainers.rlvr.config import load as load_rlvr_config
    from regrl.trainers.traffic.pretrain import load_pretrain_config

    loaders = {
        None: load_config,
        "offline": load_offline_config,
        "rlvr": load_rlvr_config,
        "sft": load_rlvr_config,
        "planner": load_pretrain_config,
    }
    cfg = loaders[yaml.safe_load(path.read_text()).get("kind")](path)
    assert cfg.name == path.stem


def test_defaults_are_stock_ppo():
    cfg = ExperimentConfig()
    assert [t.name for t in cfg.objective.terms] == ["policy", "value", "entropy"]
    assert cfg.objective.terms[0].params == PolicyParams(0.2, 0.2, None, "token-mean")
    assert cfg.objective.advantages.estimator == "gae"


def test_unknown_key_names_key_file_and_nearest(tmp_path):
    path = write(tmp_path, {"trainig": {"lr": 0.1}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "'trainig'" in msg and "did you mean 'training'" in msg


def test_unknown_nested_and_term_key(tmp_path):
    path = write(tmp_path, {"objective": {"terms": [{"name": "policy", "clip_lwo": 0.1}]}})
    with pytest.raises(
        ConfigError, match=r"objective\.terms\[0\]\.clip_lwo.*did you mean 'clip_low'"
    ):
        load_config(path)


def test_unknown_term_lists_known(tmp_path):
    path = write(tmp_path, {"objective": {"terms": [{"name": "polcy"}]}})
    with pytest.raises(
        ConfigError,
        match=r"Did you mean 'policy'\?.*Known: adaptive_entropy, candidate_policy, demo_kl, entropy",
    ):
        load_config(path)


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"training": {"lr": -0.001}}, r"training: lr must be > 0, got -0.001"),
        ({"training": {"lr": "fast"}}, r"training\.lr: expected float, got str 'fast'"),
        ({"training": {"iterations": 2.5}}, r"training\.iterations: expected int, got float"),
        ({"training": {"iterations": True}}, r"training\.iterations: expected int, got bool"),
        (
            {"objective": {"terms": [{"name": "policy", "dual_clip": 1.0}]}},
            r"dual_clip must be > 1 \(or null\), got 1.0",
        ),
        (
            {"objective": {"terms": [{"name": "policy", "clip_low": -0.5}]}},
            r"clip_low must be > 0 \(>= 1 switches the lower clip off\), got -0.5",
        ),
        (
            {"objective": {"terms": [{"name": "policy", "clip_low": 0}]}},
            r"clip_low must be > 0 \(>= 1 switches the lower clip off\), got 0",
        ),
        (
            {"objective": {"terms": [{"name": "demo_kl", "coeff": 0.1}]}},
            r"demo_kl needs checkpoint.*use the kl term",
        ),
        (
            {"objective": {"advantages": {"estimator": "gea"}}},
            r"must be one of \['gae', 'group', 'candidates'\], got 'gea' \(did you mean 'gae'\?\)",
        ),
        (
            {"objective": {"terms": [{"name": "policy"}, {"name": "lp_reg"}]}},
            r"\['policy', 'lp_reg'\] are both policy surrogates",
        ),
        (
            {"objective": {"terms": [{"name": "value"}, {"name": "value"}]}},
            r"a term is listed twice",
        ),
        (
            {"training": {"minibatch_size": 5000}},
            r"minibatch_size must be in \[1, train_batch_size",
        ),
        ({"env": "CartPole-v1"}, r"env: expected a mapping, got str"),
    ],
)
def test_bad_values_are_rejected(tmp_path, data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, data))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_overrides_apply_to_nested_and_list_items(tmp_path):
    path = write(tmp_path, {"objective": {"terms": [{"name": "policy"}, {"name": "value"}]}})
    cfg = load_config(
        path,
        [
            "training.lr=0.001",
            "objective.terms.0.dual_clip=3",
            "resources.num_env_runners=2",
            "env.kwargs.group_size=8",
        ],
    )
    assert cfg.training.lr == 0.001
    assert cfg.objective.terms[0].params.dual_clip == 3.0
    assert cfg.resources.num_env_runners == 2
    assert cfg.env.kwargs == {"group_size": 8}
    with pytest.raises(ConfigError, match="not an index"):
        load_config(path, ["objective.terms.7.coeff=1"])
    with pytest.raises(ConfigError, match="'terms' is not a list in the file"):
        load_config(write(tmp_path, {}, "empty.yaml"), ["objective.terms.0.name=lp_reg"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(path, ["training.lr"])


def test_round_trip_through_dict():
    cfg = config_from_dict(
        {
            "objective": {
                "terms": [
                    {"name": "policy", "dual_clip": 3.0, "clip_high": 0.28},
                    {"name": "demo_kl", "coeff": 0.5, "checkpoint": "runs/bc"},
                ]
            }
        }
    )
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(to_dict(cfg))))
    assert again == cfg
    assert again.objective.terms[1].params == DemoKLParams(coeff=0.5, checkpoint="runs/bc")


def test_candidate_terms_and_candidate_advantages_go_together():
    base = {"name": "x", "env": {"name": "CartPole-v1"}}
    with pytest.raises(
        ConfigError, match=r"\['candidate_policy'\] need advantages.estimator: candidates"
    ):
        config_from_dict({**base, "objective": {"terms": [{"name": "candidate_policy"}]}})
    with pytest.raises(ConfigError, match="estimator: candidates needs the candidate_policy term"):
        config_from_dict({**base, "objective": {"advantages": {"estimator": "candidates"}}})
