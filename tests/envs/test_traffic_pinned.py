"""Pinned rollouts of the RIFT traffic env in raw and candidate mode: 3 scenarios x 40 steps of
2 CBVs with fixed actions, reduced to fixed random projections of every observation, the sums
of the rewards, of the candidate returns (candidate mode) and of the episode metrics. The
numbers were recorded before the speed work of issue 25 item 4 (MetaDrive's unused reward and
cost skipped, leaner candidate generation and scoring): the faster paths must reproduce
them to round-off, so every documented traffic result stays reproducible. A changed
observation entry, reward term or candidate moves them by far more.

Round-off here is numpy's: the observation projections and episode metrics reproduce bit for
bit across numpy versions, but the float32 rewards and candidate returns moved by up to
3·10⁻⁹ relative (sums with cancellation) from the environment they were recorded in to a
fresh install with numpy 2.4.6, whose float32 kernels round a few results differently. So the tolerance is 1e-7 relative (below one float32
ulp of a single reward, ~30x the library drift seen); a reward term or candidate changed by
the code moves these sums by 1e-4 or more."""

import numpy as np
import pytest

pytest.importorskip("metadrive")  # the `traffic` extra

from regrl.envs.traffic import parallel_env, scene  # noqa: E402

RTOL = 1e-7  # round-off across numpy versions (module docstring)
SEEDS, STEPS, M = (0, 3, 7), 40, 4
EPISODE_KEYS = ("cpk", "orr", "uc", "rp", "stuck", "cbv_rc", "cbv_ds", "collided", "arrived")
# [obs · w0, obs · w1, obs · w2, Σ reward, Σ reward², Σ returns · u, Σ returns, Σ episode metrics]
PINNED = {
    "raw": (
        -9180.926242375122,
        13564.55190668814,
        9871.978605222053,
        -20.803610927492617,
        625.5372604257199,
        0.0,
        0.0,
        236.5468724798033,
    ),
    "candidate": (
        -9921.06467568771,
        16735.293326904917,
        9763.48582180076,
        -46.04547927664124,
        25.20117489640104,
        -3087.1801540382608,
        -8696.055457003415,
        109.47158430310111,
    ),
}


def digest(mode: str) -> tuple:
    """The rollouts of ``mode`` reduced to the numbers of ``PINNED``."""
    rng = np.random.default_rng(25)
    w = rng.standard_normal((3, scene.OBS_DIM))
    u = rng.standard_normal(3 * M)
    acc = np.zeros(8)
    env = parallel_env(
        num_cbv=2, horizon=STEPS, num_modes=M, traffic_density=0.05, action_mode=mode
    )
    try:
        for seed in SEEDS:
            obs, infos = env.reset(seed=seed)
            for t in range(STEPS):
                if not env.agents:
                    break
                if mode == "raw":
                    act = {
                        a: np.array([0.3 * np.sin(0.2 * t + i), 0.6], np.float32)
                        for i, a in enumerate(env.agents)
                    }
                else:
                    act = {a: (t + i) % (3 * M) for i, a in enumerate(env.agents)}
                obs, rew, _, _, infos = env.step(act)
                for a in obs:
                    acc[:3] += w @ obs[a].astype(np.float64)
                    acc[3] += rew[a]
                    acc[4] += rew[a] ** 2
                    ret = infos[a].get("candidate_returns")
                    if ret is not None:
                        acc[5] += float(u @ ret.astype(np.float64))
                        acc[6] += float(ret.astype(np.float64).sum())
                    m = infos[a]["metrics"]
                    acc[7] += sum(float(m[k]) for k in EPISODE_KEYS if k in m)
    finally:
        env.close()
    return tuple(float(x) for x in acc)


@pytest.mark.parametrize("mode", ["raw", "candidate"])
def test_rollouts_reproduce_the_pinned_numbers(mode):
    np.testing.assert_allclose(digest(mode), PINNED[mode], rtol=RTOL, atol=1e-7)
