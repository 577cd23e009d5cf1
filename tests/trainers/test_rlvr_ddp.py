"""Data-parallel RLVR learners: two Ray learner actors in a gloo group make the same update
as one learner on the same batch (mini-batch shuffling, micro-batching, token-mean and
sequence-mean terms, KL reference, gradient clipping after the all-reduce), publish and
checkpoint from rank 0 and restore on every rank."""

import pytest
import torch

from regrl.agents.models import lm
from regrl.trainers.config import ConfigError
from regrl.trainers.rlvr import config as rc
from regrl.trainers.rlvr.learner import Learner

torch.set_num_threads(1)
TOL = 1e-5
CFG = {
    "kind": "rlvr",
    "model": {"path": "tiny", "tiny_width": 32},
    "task": {"name": "arithmetic", "kwargs": {"digits": 1}},
    "rollout": {"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 6},
    # token-mean policy + KL, a sequence-mean entropy bonus: both normalisations are shared
    "objective": {
        "terms": [
            {"name": "policy"},
            {"name": "kl", "coeff": 0.1},
            {"name": "entropy", "coeff": 0.01, "agg": "seq-mean-token-mean"},
        ]
    },
    # micro-batches of 3 do not line up with the learners' shards of 4: token weighting
    # must make the boundaries irrelevant; a small clip makes clipping active
    "training": {"lr": 1.0e-3, "minibatches": 2, "micro_batch_size": 3, "grad_clip": 0.05},
    "eval": {"every": 0},
}


def _cfg(**resources):
    return rc.config_from_dict(dict(CFG, resources=resources), "t")


def _batch(learner: Learner) -> dict:
    """8 sequences with unequal prompt / completion lengths (one fully masked) and
    behaviour log-probs near the model's own, so some ratios clip."""
    g = torch.Generator().manual_seed(3)
    B, P, T, vocab = 8, 5, 6, len(learner.tokenizer)
    prompt_mask = torch.arange(P).expand(B, P) >= torch.tensor([0, 2, 1, 0, 3, 0, 1, 2])[:, None]
    prompt_ids = torch.where(
        prompt_mask, torch.randint(4, vocab, (B, P), generator=g), learner.tokenizer.pad_token_id
    )
    lengths = torch.tensor([6, 1, 3, 6, 0, 5, 2, 4])
    mask = torch.arange(T).expand(B, T) < lengths[:, None]
    tokens = torch.randint(4, vocab, (B, T), generator=g) * mask
    with torch.no_grad():
        logits = lm.completion_logits(learner.model, prompt_ids, prompt_mask, tokens, mask)
        logp = lm.token_logprobs(logits.float(), tokens, 1.0)[0]
    logp = logp + 0.3 * torch.randn(B, T, generator=g)
    advantages = torch.tensor([1.0, -0.5, 0.8, -1.2, 0.3, -0.7, 1.5, -0.2])
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask.long(),
        "tokens": tokens,
        "mask": mask,
        "logp": logp,
        "advantages": advantages,
    }


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_num_learners_needs_ray_mode_and_enough_sequences():
    with pytest.raises(ConfigError, match="needs mode: ray"):
        _cfg(num_learners=2)
    with pytest.raises(ConfigError, match="num_learners must be >= 1"):
        _cfg(mode="ray", num_learners=0)
    with pytest.raises(ConfigError, match="every learner needs at least one"):
        _cfg(mode="ray", num_learners=5)  # 8 sequences / 2 mini-batches = 4 per mini-batch


def test_micro_batch_size_does_not_change_the_update():
    """Token-mean terms are weighted by valid tokens, so micro-batching is exact."""
    cfg = _cfg()
    whole = Learner(
        rc.config_from_dict(dict(CFG, training=dict(CFG["training"], micro_batch_size=8)), "t")
    )
    micro = Learner(cfg)
    batch = _batch(whole)
    m_whole, m_micro = whole.update(batch), micro.update(batch)
    assert _max_diff(whole.weights(), micro.weights()) < TOL
    for key in ("grad_norm", "total_loss", "policy_loss", "clip_frac", "entropy"):
        assert m_micro[f"learner/{key}"] == pytest.approx(
            m_whole[f"learner/{key}"], rel=1e-5, abs=1e-7
        ), key


def test_two_learners_match_one(ray_session, tmp_path):
    ray = ray_session
    from regrl.trainers.rlvr.actors import RayBackend
    from regrl.trainers.rlvr.loop import Trainer

    single = Learner(_cfg())
    batch = _batch(single)
    before = single.weights()
    backend = RayBackend(_cfg(mode="ray", num_learners=2, cpus_per_actor=0.25))
    group = backend.learners
    try:
        rank0, rank1 = ray.get([a.weights.remote() for a in group.actors])
        assert _max_diff(rank0, before) == 0.0 and _max_diff(rank1, before) == 0.0
        m_one, m_two = single.update(batch), group.update(batch)
        rank0, rank1 = ray.get([a.weights.remote() for a in group.actors])
        after = single.weights()
        moved = _max_diff(after, before)
        assert moved > 100 * TOL  # the update is large against the tolerance
        assert _max_diff(rank0, after) < TOL and _max_diff(rank1, rank0) == 0.0
        for key in (
            "grad_norm",
            "total_loss",
            "policy_loss",
            "kl_ref",
            "entropy_bonus",
            "clip_frac",
            "approx_kl",
            "entropy",
        ):
            assert m_two[f"learner/{key}"] == pytest.approx(
                m_one[f"learner/{key}"], rel=1e-5, abs=1e-7
            ), key
        assert m_one["learner/grad_norm"] > CFG["training"]["grad_clip"]  # clipping was active
        assert m_one["learner/clip_frac"] > 0
        # rank 0 publishes and checkpoints; restore reloads every rank
        assert _max_diff(ray.get(group.weights()), rank0) == 0.0
        backend.save(str(tmp_path))
        metrics = Trainer(backend.cfg, backend).step(1)  # generate, score, update, publish
        assert metrics["learner/weights_version"] == backend.version == 1
        backend.restore(str(tmp_path))
        restored = ray.get([a.weights.remote() for a in group.actors])
        assert all(_max_diff(w, rank0) == 0.0 for w in restored)
        assert _max_diff(ray.get(backend.weights_box[0]), rank0) == 0.0
    finally:
        backend.close()
