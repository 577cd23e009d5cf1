"""The ensemble (pooled) spectrum error difference and its paired bootstrap
(``envs/turbulence/metrics.py``), by hand."""

import numpy as np
import pytest

from regrl.envs.turbulence.metrics import (
    log_spectrum_error,
    paired_bootstrap,
    pooled_error_difference,
)

REF = np.array([0.0, 1.0, 1.0])


def test_pooled_difference_scores_the_mean_spectrum_not_the_mean_error():
    base = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    arm = np.array([[0.0, 10.0, 1.0], [0.0, 1.0, 1.0]])
    pooled = np.sqrt(np.log10(5.5) ** 2 / 2)  # mean spectrum (0, 5.5, 1)
    assert pooled_error_difference(arm, base, REF) == pytest.approx(pooled)
    # the mean of the per-simulation errors would be (√½ + 0)/2 = 0.354, not 0.524
    per_sim = np.mean([log_spectrum_error(a, REF) for a in arm])
    assert abs(per_sim - pooled) > 0.1
    # seeds: each seed's own mean spectrum, the differences averaged (the second seed is the
    # base itself); pooling both seeds' simulations first would give log10(3.25)/√2 = 0.362
    two_seeds = np.stack([arm, base])
    assert pooled_error_difference(two_seeds, base, REF) == pytest.approx(pooled / 2)
    # the sign: an arm closer to the reference than the base is negative
    assert pooled_error_difference(base, arm, REF) == pytest.approx(-pooled)


def test_pooled_difference_refuses_unpaired_shapes():
    with pytest.raises(ValueError, match="same simulations"):
        pooled_error_difference(np.ones((3, 3)), np.ones((2, 3)), REF)


def test_paired_bootstrap_keeps_simulations_paired():
    rng = np.random.default_rng(1)
    sims, k = 24, 6
    ref = np.r_[0.0, np.ones(k - 1)]
    weather = np.exp(rng.normal(0.0, 0.6, (sims, k)))  # large scatter between simulations
    base = ref * weather
    arm = base * np.r_[1.0, 1.0, 1.0, 1.0, 1.25, 1.25]  # the same weather, two shells off
    point, low, high = paired_bootstrap(arm, base, ref, resamples=400)
    assert point == pytest.approx(pooled_error_difference(arm, base, ref))
    assert low <= point <= high
    # unpaired resampling (independent draws for arm and base) is far wider: a bootstrap
    # that drew the arm's and the base's simulations apart would fail this
    draws = []
    for _ in range(400):
        i, j = rng.integers(0, sims, sims), rng.integers(0, sims, sims)
        draws.append(
            log_spectrum_error(arm[i].mean(0), ref) - log_spectrum_error(base[j].mean(0), ref)
        )
    unpaired = np.quantile(draws, [0.025, 0.975])
    assert high - low < 0.5 * (unpaired[1] - unpaired[0])
    # identical arms: zero, with a zero-width interval
    assert paired_bootstrap(base, base, ref, resamples=50) == (0.0, 0.0, 0.0)
