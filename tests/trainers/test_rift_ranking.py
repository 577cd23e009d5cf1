"""trainers/traffic/ranking.py: regret of a scorer's choice against RIFT's best-return
candidate, the share of the IL scorer's regret closed, and the listwise target, by hand."""

import numpy as np
import pytest

from regrl.trainers.traffic.ranking import (
    listwise_target,
    per_group_means,
    regret,
    regret_closed,
)

R = np.array([[1.0, 3.0, 2.0, 50.0], [-4.0, -1.0, -2.0, 0.0], [5.0, 5.0, 0.0, 0.0]])
V = np.array([[True, True, True, False], [True, True, True, False], [True, True, False, False]])


def test_regret_is_best_valid_return_minus_the_return_of_the_top_scored_valid_candidate():
    scores = np.array([[0.0, 1.0, 2.0, 9.0], [3.0, 0.0, 0.0, 9.0], [0.0, 1.0, 9.0, 0.0]])
    gap, top1 = regret(R, V, scores)
    # state 0: invalid 4th ignored (return 50, score 9); pick 2 (return 2), best 3 -> 1
    # state 1: pick 0 (-4), best -1 -> 3; state 2: pick 1 (5), best 5 (a tie) -> 0
    np.testing.assert_allclose(gap, [1.0, 3.0, 0.0])
    np.testing.assert_array_equal(top1, [False, False, True])


def test_regret_closed_is_one_minus_the_regret_ratio():
    assert regret_closed([0.0, 1.0], [2.0, 2.0]) == pytest.approx(0.75)
    assert regret_closed([3.0, 3.0], [2.0, 2.0]) == pytest.approx(-0.5)  # worse than IL
    assert np.isnan(regret_closed([0.0], [0.0]))
    with pytest.raises(ValueError, match="different states"):
        regret_closed([0.0, 1.0], [1.0])


def test_listwise_target_is_the_softmax_of_returns_over_valid_candidates():
    p = listwise_target(R, V, tau=2.0)
    e = np.exp(np.array([1.0, 3.0, 2.0]) / 2.0)
    np.testing.assert_allclose(p[0], list(e / e.sum()) + [0.0])
    np.testing.assert_allclose(p.sum(-1), 1.0)
    assert p[2, 0] == pytest.approx(0.5) and p[2, 2] == 0.0
    with pytest.raises(ValueError, match="tau"):
        listwise_target(R, V, tau=0.0)


def test_bad_shapes_and_states_without_a_valid_candidate_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        regret(R, V[:, :3], R)
    with pytest.raises(ValueError, match="valid candidate"):
        regret(R, np.zeros_like(V), R)
    with pytest.raises(ValueError, match="scores"):
        regret(R, V, R[:, :2])


def test_per_group_means_in_sorted_label_order():
    np.testing.assert_allclose(per_group_means([1.0, 3.0, 10.0, 0.0], [7, 7, 2, 2]), [5.0, 2.0])
