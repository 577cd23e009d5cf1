"""Learner metrics are reduced over an iteration's mini-batches (mean, extremes), controller
state is the last value, and each iteration starts afresh (RLlib's MetricsLogger, no Ray
session needed)."""

import pytest
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from regrl.trainers.rllib.learner import log_minibatch_metrics, metric_reduce


def _values(reduced, module="m"):
    return {
        k: float(v.peek()) if hasattr(v, "peek") else float(v) for k, v in reduced[module].items()
    }


def test_an_iteration_reports_means_extremes_and_the_last_controller_state():
    logger = MetricsLogger()
    batches = [
        {
            "policy_loss": 1.0,
            "dual_clip_frac": 0.0,
            "neg_ratio_max": 3.0,
            "adaptive_entropy_coeff": 0.1,
        },
        {
            "policy_loss": 2.0,
            "dual_clip_frac": 0.5,
            "neg_ratio_max": 9.0,
            "adaptive_entropy_coeff": 0.2,
        },
        {
            "policy_loss": 6.0,
            "dual_clip_frac": 0.1,
            "neg_ratio_max": 1.0,
            "adaptive_entropy_coeff": 0.3,
        },
    ]
    for b in batches:
        log_minibatch_metrics(logger, "m", b)
    got = _values(logger.reduce())
    assert got["policy_loss"] == pytest.approx(3.0)  # not the last mini-batch's 6.0
    assert got["dual_clip_frac"] == pytest.approx(0.2)
    assert got["neg_ratio_max"] == pytest.approx(9.0)
    assert got["adaptive_entropy_coeff"] == pytest.approx(0.3)
    for b in (
        {"policy_loss": 10.0, "neg_ratio_max": 2.0},
        {"policy_loss": 20.0, "neg_ratio_max": 4.0},
    ):
        log_minibatch_metrics(logger, "m", b)
    got = _values(logger.reduce())
    assert got["policy_loss"] == pytest.approx(15.0)  # the previous iteration is cleared
    assert got["neg_ratio_max"] == pytest.approx(4.0)


def test_reduce_names():
    assert [
        metric_reduce(k) for k in ("adaptive_entropy_coeff", "neg_ratio_max", "x_min", "kl")
    ] == [
        "last",
        "max",
        "min",
        "mean",
    ]
