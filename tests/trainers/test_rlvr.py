"""RLVR trainer: config validation, objective wiring (Lp-Reg, demo-KL, on-policy ratio),
rollout metrics, and a 2-step local run with TensorBoard, checkpoint, resume and eval."""

import math
from pathlib import Path

import pytest
import torch
import yaml

from regrl.trainers.config import ConfigError
from regrl.trainers.rlvr import config as rc
from regrl.trainers.rlvr.backends import merge_rollouts
from regrl.trainers.rlvr.learner import Learner
from regrl.trainers.rlvr.loop import rollout_metrics, train_rlvr
from regrl.trainers.rlvr.policy import build_policy, save_policy
from regrl.trainers.rlvr.terms import RLVR_TERMS, TermContext

torch.set_num_threads(1)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {
    "kind": "rlvr",
    "model": {"path": "tiny", "tiny_width": 32},
    "task": {"name": "arithmetic", "kwargs": {"digits": 1}},
    "rollout": {"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 6},
    "training": {"steps": 2, "lr": 1.0e-3, "micro_batch_size": 8},
    "eval": {"every": 2, "prompts": 2, "pass_k": 2},
    "checkpoint": {"every": 1, "keep": 2},
}


def tiny_cfg(tmp_path, **sections):
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data.update(runs_root=str(tmp_path / "runs"), **sections)
    return rc.config_from_dict(data, "test")


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "name", sorted(p.name for p in CONFIGS.glob("rlvr_*.yaml")) + ["sft_arith.yaml"]
)
def test_shipped_configs_validate(name):
    cfg = rc.load(CONFIGS / name)
    assert cfg.kind in ("rlvr", "sft")


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"objective": {"terms": [{"name": "lp_rg"}]}}, "Did you mean 'lp_reg'"),
        ({"objective": {"terms": [{"name": "entropy"}]}}, "exactly one policy surrogate"),
        ({"objective": {"terms": [{"name": "policy", "dual_clip": 1.0}]}}, "dual_clip must be > 1"),
        ({"rollout": {"grup_size": 4}}, "did you mean 'group_size'"),
        ({"resources": {"num_learners": 2}}, "needs mode: ray"),
        ({"training": {"minibatches": 3}}, "must divide"),
        ({"task": {"name": "arithmetik"}}, "Did you mean 'arithmetic'"),
        (
            {"objective": {"terms": [{"name": "policy"}, {"name": "demo_kl"}]}},
            "demo_kl needs checkpoint",
        ),
        (
            {"objective": {"terms": [{"name": "policy"}, {"name": "value"}]}},
            "need a critic or candidate",
        ),
        ({"objective": {"terms": [{"name": "candidate_policy"}]}}, "need a critic or candidate"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, patch, message):
    data = dict(TINY, **patch)
    with pytest.raises(ConfigError, match=message):
        rc.config_from_dict(data, "bad.yaml")


# ---------------------------------------------------------------------------- objective wiring
def _ctx(logp, old_logp, proxy, adv, requires_grad=True):
    logp = torch.tensor(logp, dtype=torch.float64, requires_grad=requires_grad)
    B, T = logp.shape
    return TermContext(
        actions=torch.zeros(B, T, dtype=torch.long),
        logp=logp,
        old_logp=torch.tensor(old_logp, dtype=torch.float64),
        advantages=torch.tensor(adv, dtype=torch.float64),
        mask=torch.ones(B, T, dtype=torch.bool),
        entropy=torch.zeros(B, T),
        dist_inputs=torch.zeros(B, T, 3),
        proxy_logp=torch.tensor(proxy, dtype=torch.float64),
    )


def test_lp_reg_term_changes_only_the_low_prob_negative_token():
    """Two sequences, A = (+1, -1). Among the 3 negative tokens the lowest-prob one
    (logp = log 0.05) is below its proxy (log 0.1) and is the only one regularised
    (rho = 0.34 -> k = 1); every other token's gradient equals plain GRPO's."""
    logp = [
        [math.log(0.01), math.log(0.5), math.log(0.6)],
        [math.log(0.05), math.log(0.3), math.log(0.7)],
    ]
    proxy = [[0.0, 0.0, 0.0], [math.log(0.1), math.log(0.4), 0.0]]
    ctx_lp, ctx_pg = _ctx(logp, logp, proxy, [1.0, -1.0]), _ctx(logp, logp, proxy, [1.0, -1.0])
    lp = RLVR_TERMS.get("lp_reg")
    loss_lp, m = lp.fn(ctx_lp, lp.params_cls(rho=0.34, beta=1.0, clip_low=0.2, clip_high=0.2))
    pg = RLVR_TERMS.get("policy")
    loss_pg, _ = pg.fn(ctx_pg, pg.params_cls(clip_low=0.2, clip_high=0.2))
    loss_lp.backward()
    loss_pg.backward()
    diff = ctx_lp.logp.grad - ctx_pg.logp.grad
    assert m["lp_reg_token_num"].item() == 1.0
    # k3 = r - log r - 1 with r = 0.1 / 0.05 = 2: value 1 - log 2, d/dlogp = 1 - r = -1; / 6 tokens
    assert diff[1, 0].item() == pytest.approx(-1.0 / 6, abs=1e-9)
    diff[1, 0] = 0.0
    assert torch.count_nonzero(diff) == 0  # the low-prob positive-advantage token (0.01) untouched
    assert (loss_lp - loss_pg).item() == pytest.approx((1 - math.log(2)) / 6, abs=1e-9)
    assert m["kl_to_proxy"].item() == pytest.approx(1 - math.log(2), abs=1e-9)


def test_policy_term_clip_sides_hand_computed():
    """ratio = (1.5, 0.5) for A = +1 and (0.5, 1.0) for A = -1: one high-side clip (1.5 >
    1.28, A > 0) and one low-side clip (0.5 < 0.8, A < 0) out of four tokens."""
    old = [[0.0, 0.0], [0.0, 0.0]]
    logp = [[math.log(1.5), math.log(0.5)], [math.log(0.5), 0.0]]
    ctx = _ctx(
        [[a - 1.0 for a in row] for row in logp],
        [[o - 1.0 for o in row] for row in old],
        old,
        [1.0, -1.0],
    )
    pg = RLVR_TERMS.get("policy")
    _, m = pg.fn(ctx, pg.params_cls(clip_low=0.2, clip_high=0.28, dual_clip=3.0))
    assert m["clip_frac_high"].item() == pytest.approx(0.25)
    assert m["clip_frac_low"].item() == pytest.approx(0.25)
    assert m["clip_frac"].item() == pytest.approx(0.5)


@pytest.fixture(scope="module")
def rollout_batch():
    """A small rollout of the tiny model: 2 prompts x 4 completions."""
    from regrl.trainers.rlvr.rollout import RolloutWorker

    cfg = rc.config_from_dict(TINY, "t")
    worker = RolloutWorker(cfg, proxy_kappa=0.02)
    gen = worker.generate(["Compute 1+2.", "Compute 3*4."], 4, 1.0, seed=0)
    return cfg, worker, gen


def _batch(gen, advantages):
    batch = {k: v for k, v in gen.items() if torch.is_tensor(v)}
    batch["advantages"] = advantages
    return batch


def test_on_policy_ratio_is_one_and_proxy_is_present(rollout_batch):
    cfg, worker, gen = rollout_batch
    assert gen["proxy_logp"].shape == gen["logp"].shape
    kept = gen["mask"] & (gen["proxy_logp"] > -1000)  # tokens the min-p filter kept
    assert bool((gen["proxy_logp"][kept] >= gen["logp"][kept] - 1e-6).all())  # renormalised up
    learner = Learner(cfg, model=worker.model, tokenizer=worker.tokenizer)
    adv = torch.tensor([1.0, -1.0] * 4)
    metrics = learner.update(_batch(gen, adv))
    assert abs(metrics["learner/approx_kl"]) < 1e-5 and metrics["learner/clip_frac"] == 0.0
    assert metrics["perf/learner_tokens_per_s"] > 0 and learner.version == 1


def test_learner_ratio_uses_the_batch_behaviour_logp(rollout_batch):
    """Behaviour log-probs 0.3 above the learner's own: the ratio is exp(-0.3) on every token,
    so approx_kl = mean(log pi_old - log pi_theta) = 0.3 and the A < 0 tokens (ratio < 0.8)
    clip. A learner that took its own detached log-probs as pi_old would report 0 and 0."""
    import copy

    cfg, worker, gen = rollout_batch
    learner = Learner(cfg, model=copy.deepcopy(worker.model), tokenizer=worker.tokenizer)
    batch = _batch(gen, torch.tensor([1.0, -1.0] * 4))
    with torch.no_grad():
        batch["logp"] = learner._context(batch, cfg.rollout.temperature).logp + 0.3
    metrics = learner.update(batch)
    assert metrics["learner/approx_kl"] == pytest.approx(0.3, abs=1e-4)
    negative = (batch["mask"] & (batch["advantages"] < 0).unsqueeze(-1)).sum() / batch["mask"].sum()
    assert metrics["learner/clip_frac"] == pytest.approx(float(negative), abs=1e-6)


def test_demo_kl_pulls_toward_the_sft_policy(tmp_path, rollout_batch):
    """Zero advantages and only the demo-KL term: KL(pi || pi_BC) falls step by step."""
    cfg0, worker, gen = rollout_batch
    demo_model, tok = build_policy(cfg0.model, seed=123)  # a different "SFT" policy
    save_policy(demo_model, tok, tmp_path / "sft")
    cfg = tiny_cfg(
        tmp_path,
        objective={
            "terms": [
                {"name": "policy"},
                {"name": "demo_kl", "coeff": 1.0, "checkpoint": str(tmp_path / "sft")},
            ]
        },
        training={"steps": 2, "lr": 3.0e-3, "micro_batch_size": 8},
    )
    model, tok = build_policy(cfg.model, seed=0)
    learner = Learner(cfg, model=model, tokenizer=tok)
    kls = [learner.update(_batch(gen, torch.zeros(8)))["learner/demo_kl"] for _ in range(4)]
    assert kls[0] > 0.01 and all(b < a for a, b in zip(kls, kls[1:])), kls


def test_demo_kl_rejects_another_tokenizer(tmp_path):
    from regrl.agents.models import lm

    tok = lm.char_tokenizer("0123456789")
    save_policy(lm.tiny_lm(tok, n_embd=32), tok, tmp_path / "other")
    cfg = tiny_cfg(
        tmp_path,
        objective={
            "terms": [
                {"name": "policy"},
                {"name": "demo_kl", "checkpoint": str(tmp_path / "other")},
            ]
        },
    )
    with pytest.raises(ValueError, match="tokenizer differs"):
        Learner(cfg)


# ---------------------------------------------------------------------------- rollout helpers
def test_rollout_metrics_hand_computed():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    logp = torch.log(torch.tensor([[0.05, 0.9, 1.0], [0.5, 0.02, 0.9], [0.9, 1, 1], [0.9, 0.9, 1]]))
    gen = {
        "mask": mask,
        "logp": logp * mask,
        "entropy": torch.ones(4, 3) * mask,
        "gen_tokens": 8,
        "gen_seconds": 2.0,
    }
    m = rollout_metrics(gen, torch.tensor([1.0, 0.0, 0.0, 0.0]), group_size=2, low_prob=0.1)
    assert m["train/accuracy"] == 0.25 and m["train/pass@G"] == 0.5
    assert m["train/response_len"] == 2.0 and m["rollout/entropy"] == pytest.approx(1.0)
    assert m["rollout/low_prob_token_frac"] == pytest.approx(2 / 8)
    assert m["rollout/low_prob_token_prob"] == pytest.approx(0.035)
    assert m["perf/rollout_tokens_per_s"] == 4.0


def test_merge_rollouts_pads_prompts_left_and_completions_right():
    a = {
        "prompt_ids": torch.tensor([[7, 8]]),
        "prompt_mask": torch.tensor([[1, 1]]),
        "tokens": torch.tensor([[5]]),
        "mask": torch.tensor([[True]]),
        "texts": ["a"],
        "gen_tokens": 1,
        "gen_seconds": 1.0,
    }
    b = {
        "prompt_ids": torch.tensor([[9]]),
        "prompt_mask": torch.tensor([[1]]),
        "tokens": torch.tensor([[5, 6]]),
        "mask": torch.tensor([[True, True]]),
        "texts": ["b"],
        "gen_tokens": 2,
        "gen_seconds": 3.0,
    }
    m = merge_rollouts([a, b], pad_id=0)
    assert m["prompt_ids"].tolist() == [[7, 8], [0, 9]] and m["prompt_mask"].tolist() == [
        [1, 1],
        [0, 1],
    ]
    assert m["tokens"].tolist() == [[5, 0], [5, 6]] and m["mask"].tolist() == [
        [True, False],
        [True, True],
    ]
    assert m["texts"] == ["a", "b"] and m["gen_tokens"] == 3 and m["gen_seconds"] == 3.0


# ---------------------------------------------------------------------------- end to end (local)
def test_local_run_logs_checkpoints_resumes_and_evaluates(tmp_path):
    from regrl.trainers.cli import main
    from regrl.trainers.rlvr.evaluate import read_scalars

    cfg = tiny_cfg(
        tmp_path,
        objective={
            "terms": [
                {"name": "lp_reg", "rho": 0.2},
                {"name": "entropy", "coeff": 0.01},
                {"name": "kl", "coeff": 0.01},
            ]
        },
    )
    result = train_rlvr(cfg, progress=False)
    run = result.run_dir
    tags = read_scalars(run)
    for tag in (
        "train/accuracy",
        "train/pass@G",
        "train/response_len",
        "learner/entropy",
        "rollout/low_prob_token_frac",
        "rollout/low_prob_token_prob",
        "learner/lp_reg_token_num",
        "learner/lp_reg_token_frac",
        "learner/clip_frac_low",
        "learner/clip_frac_high",
        "learner/kl_ref",
        "learner/kl_to_proxy",
        "perf/rollout_tokens_per_s",
        "perf/learner_tokens_per_s",
        "eval/pass@1",
        "eval/pass@k",
    ):
        assert tag in tags, tag
    assert tags["learner/weights_version"][1] == [1.0, 2.0]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["training"]["steps"] = 3
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    tags = read_scalars(run)
    assert tags["train/accuracy"][0] == [1, 2, 3]
    assert tags["learner/weights_version"][1][-1] == 3.0  # optimizer/version state restored
    assert main(["eval", str(run)]) == 0
    assert (run / "eval.png").stat().st_size > 0 and (run / "eval.json").is_file()


def test_sft_lowers_loss_and_its_run_is_a_policy_path(tmp_path):
    from regrl.trainers.rlvr.sft import encode_demonstrations, sft_loss, train_sft

    cfg = rc.config_from_dict(
        {
            "kind": "sft",
            "runs_root": str(tmp_path),
            "name": "sft",
            "model": {"path": "tiny", "tiny_width": 32},
            "data": {"task": {"name": "arithmetic", "kwargs": {"digits": 1}}, "n": 64},
            "training": {"epochs": 4, "batch_size": 16, "lr": 3.0e-3},
            "checkpoint": {"every": 4},
        },
        "sft.yaml",
    )
    result = train_sft(cfg, progress=False)
    model0, tok = build_policy(cfg.model, seed=0)
    tuned, tok2 = build_policy(
        rc.LMConfig(path=str(tmp_path / "sft"))
    )  # experiment dir -> newest run
    assert tok2.get_vocab() == tok.get_vocab()
    data = encode_demonstrations(
        tok,
        [
            {
                "prompt": "Compute 2+3. Put the final answer after 'Answer:'.",
                "completion": "2 + 3 = 5.\nAnswer: 5",
            }
        ],
        False,
    )
    assert data[3].sum() == len("2 + 3 = 5.\nAnswer: 5") + 1  # completion chars + EOS
    with torch.no_grad():
        before, after = sft_loss(model0, *data)[0], sft_loss(tuned, *data)[0]
    assert after < 0.8 * before and result.epoch == 4


def test_adaptive_entropy_controller_steps_per_optimizer_step_and_is_saved(tmp_path, rollout_batch):
    """Skywork-OR1 adaptive entropy: with a target above the policy's entropy the coefficient
    rises by delta on every optimizer step (2 mini-batches x 2 updates = 4 steps), the bonus
    then pushes entropy up, and save/restore keeps the controller's state."""
    cfg0, worker, gen = rollout_batch
    cfg = tiny_cfg(
        tmp_path,
        objective={
            "terms": [
                {"name": "policy"},
                {"name": "adaptive_entropy", "target": 50.0, "delta": 0.01, "max_coeff": 0.5},
            ]
        },
        training={"steps": 2, "lr": 1.0e-3, "micro_batch_size": 8, "minibatches": 2},
    )
    model, tok = build_policy(cfg.model, seed=0)
    learner = Learner(cfg, model=model, tokenizer=tok)
    first = learner.update(_batch(gen, torch.zeros(8)))
    assert first["learner/adaptive_entropy_coeff"] == pytest.approx(0.005)  # mean of 0, .01
    learner.update(_batch(gen, torch.zeros(8)))
    assert learner.term_state["adaptive_entropy/coeff"] == pytest.approx(0.04)
    learner.save(str(tmp_path / "ck"))
    other = Learner(cfg, model=build_policy(cfg.model, seed=1)[0], tokenizer=tok)
    other.restore(str(tmp_path / "ck"))
    assert other.term_state == learner.term_state
