"""Resource demands a fixed cluster can never meet are refused before training, naming what
was asked and what exists; with an autoscaler the run says what it waits for. Hand-made
bundles and nodes (a real ``regrl train`` refused on this machine is in
test_learner_data_parallel.py, which has a Ray session)."""

import pytest

from regrl.trainers import feasibility
from regrl.trainers.checks import ConfigError
from regrl.trainers.config import config_from_dict
from regrl.trainers.feasibility import Demand, check, describe_nodes, unmet
from regrl.trainers.run import actor_demands

LAPTOP = [{"CPU": 2.0, "memory": 1e10, "node:127.0.0.1": 1.0}]


def rl(**resources):
    cfg = {"name": "x", "env": {"name": "CartPole-v1"}, "resources": resources}
    return actor_demands(config_from_dict(cfg))


def test_two_learners_and_an_env_runner_exceed_two_cpus():
    assert unmet(rl(num_learners=2, num_env_runners=1), LAPTOP) == [
        "CPU: 3 asked (1 env runner x 1 + 2 learners x 1), the cluster has 2"
    ]
    assert unmet(rl(num_learners=2), LAPTOP) == []  # 2 learner actors, sampling in the driver
    assert unmet(rl(num_learners=1, num_env_runners=1), LAPTOP) == []


def test_an_actor_bigger_than_every_node_is_refused_although_the_total_suffices():
    two_nodes = [{"CPU": 2.0}, {"CPU": 2.0}]
    assert unmet(rl(num_env_runners=1, num_cpus_per_env_runner=3), two_nodes) == [
        "one env runner needs {CPU: 3}, which no node has"
    ]


def test_gpu_and_custom_resources_per_bundle():
    demands = rl(num_learners=1, num_gpus_per_learner=1, learner_resources={"learner_slot": 1})
    cpu_node, gpu_node = {"CPU": 16.0, "env_runner_slot": 16.0}, {"CPU": 4.0, "GPU": 1.0}
    problems = unmet(demands, [cpu_node, gpu_node])
    assert "one learner needs {GPU: 1, learner_slot: 1}, which no node has" in problems
    assert "learner_slot: 1 asked (1 learner x 1), the cluster has 0" in problems
    assert unmet(demands, [cpu_node, {**gpu_node, "learner_slot": 1.0}]) == []
    # the GPU of a local learner (num_learners: 0) must exist on some node too
    assert unmet(rl(num_gpus_per_learner=1), LAPTOP) == [
        "one local learner needs {GPU: 1}, which no node has",
        "GPU: 1 asked (1 local learner x 1), the cluster has 0",
    ]


def test_rlvr_actors_are_checked_the_same_way():
    from regrl.trainers.rlvr import config as rc
    from regrl.trainers.rlvr.loop import actor_demands as rlvr_demands
    from tests.trainers.test_rlvr_ray import CFG

    cfg = rc.config_from_dict({**CFG, "resources": {**CFG["resources"], "cpus_per_actor": 1}})
    assert unmet(rlvr_demands(cfg), LAPTOP) == [
        "CPU: 4 asked (2 rollout actors x 1 + 1 reward actor x 1 + 1 learner x 1), "
        "the cluster has 2"
    ]
    assert unmet(rlvr_demands(cfg), [{"CPU": 4.0}]) == []


def test_no_assignment_although_each_bundle_fits_and_totals_suffice():
    demands = [Demand("env runner", 2, {"CPU": 3}), Demand("learner", 1, {"CPU": 2})]
    assert unmet(demands, [{"CPU": 4.0}, {"CPU": 4.0}]) == [
        "no node assignment fits all actors: 2 x env runner {CPU: 3}, 1 x learner {CPU: 2}"
    ]


def test_the_search_backtracks_where_first_fit_would_fail():
    """The 4-CPU runner fits either node; first-fit puts it on the slot node, where the
    learner that needs the slot then finds no CPU. Backtracking finds the other assignment."""
    demands = [Demand("env runner", 1, {"CPU": 4}), Demand("learner", 1, {"CPU": 1, "slot": 1})]
    assert unmet(demands, [{"CPU": 4.0, "slot": 1.0}, {"CPU": 4.0}]) == []


def test_an_undecided_search_lets_the_run_through(monkeypatch):
    monkeypatch.setattr(feasibility, "SEARCH_STEPS", 1)
    demands = [Demand("env runner", 2, {"CPU": 3}), Demand("learner", 1, {"CPU": 2})]
    assert unmet(demands, [{"CPU": 4.0}, {"CPU": 4.0}]) == []


def test_check_refuses_without_autoscaler_and_waits_with_one(capsys):
    demands = rl(num_learners=2, num_env_runners=1)
    with pytest.raises(ConfigError) as err:
        check(demands, LAPTOP, autoscaler=False, fix="lower them")
    assert str(err.value) == (
        "this Ray cluster can never place the run's actors: CPU: 3 asked (1 env runner x 1 + "
        "2 learners x 1), the cluster has 2 (1 node: {CPU: 2}); lower them"
    )
    check(demands, LAPTOP, autoscaler=True, fix="lower them")
    assert capsys.readouterr().out.startswith(
        "waiting for the autoscaler to add nodes: CPU: 3 asked"
    )
    check(demands, LAPTOP, autoscaler=None, fix="lower them")
    assert "cannot tell whether it has an autoscaler" in capsys.readouterr().out


def test_nodes_are_described_by_shape():
    nodes = [{"CPU": 16.0, "env_runner_slot": 16.0}] * 2 + [{"CPU": 4.0, "GPU": 1.0}]
    assert describe_nodes(nodes, ["env_runner_slot"]) == (
        "3 nodes: {CPU: 16, env_runner_slot: 16} x 2, {CPU: 4, GPU: 1}"
    )
