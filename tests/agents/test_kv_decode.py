"""The fast rollout sampler (static KV cache, lean GPT-2 / Llama forward, fused sampling, shared
prompt prefill, dropped finished rows) against a straightforward reference loop: a full HF
forward over prompt + tokens so far at every step, ``multinomial(softmax(logits / T))``."""

import pytest
import torch
import torch.nn.functional as F

from regrl.agents.models import kv_decode, lm
from regrl.agents.objectives import minp_proxy_logprob

torch.set_num_threads(1)
ALPHABET = "0123456789+-*= .:?ACenmoprsuwt"
PROMPTS = ["7+8=", "12*34=", "5-3="]


@pytest.fixture(scope="module")
def tok():
    return lm.char_tokenizer(ALPHABET)


def _llama(tok):
    """A tiny random Llama with grouped-query attention (SmolLM2's architecture)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tok):
    if request.param == "gpt2":
        return lm.tiny_lm(tok, n_layer=2, n_embd=32, n_head=4, seed=0)
    return _llama(tok)


@torch.no_grad()
def reference_sample(model, ids, mask, T, temperature, eos_id, pad_id, gen):
    """The plain loop: full forward each step, EOS-finished rows padded and masked."""
    B = ids.shape[0]
    done = torch.zeros(B, dtype=torch.bool)
    toks, alive, logps = [], [], []
    for _ in range(T):
        cur = torch.cat([ids] + [t[:, None] for t in toks], 1)
        m = torch.cat([mask, torch.ones(B, len(toks), dtype=mask.dtype)], 1).long()
        logits = model(input_ids=cur, attention_mask=m, position_ids=lm.positions(m)).logits[:, -1]
        probs = F.softmax(logits / temperature, dim=-1)
        t = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
        t = torch.where(done, torch.full_like(t, pad_id), t)
        (
            toks.append(t),
            alive.append(~done),
            logps.append(torch.log(probs.gather(-1, t[:, None]))[:, 0]),
        )
        done = done | (t == eos_id)
        if bool(done.all()):
            break
    a = torch.stack(alive, 1)
    return torch.stack(toks, 1), a, torch.stack(logps, 1) * a


def _batch(tok, group=3):
    """GRPO shape: each prompt repeated ``group`` times, left-padded."""
    return lm.encode_prompts(tok, [p for p in PROMPTS for _ in range(group)], chat_template=False)


def _frequent_token(model, tok, ids, mask):
    """The token found in most rows of a free run, used as EOS so rows end at different steps."""
    s = lm.sample(
        model,
        ids,
        mask,
        max_new_tokens=24,
        temperature=0.8,
        eos_id=-1,
        pad_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0),
        stop_at_eos=False,
    )
    rows_with = F.one_hot(s.tokens, len(tok)).amax(1).sum(0)
    return int(rows_with.argmax())


def test_fast_path_is_used(model):
    assert kv_decode.supports(model)
    assert isinstance(lm._forward_for(model), lm._LeanForward)


def test_sampler_matches_reference_loop(model, tok):
    """Same tokens and log-probs for a fixed seed, through shared prefill and dropped rows."""
    ids, mask = _batch(tok)
    eos = _frequent_token(model, tok, ids, mask)
    kw = dict(temperature=0.8, eos_id=eos, pad_id=tok.pad_token_id)
    s = lm.sample(
        model, ids, mask, max_new_tokens=24, generator=torch.Generator().manual_seed(0), **kw
    )
    r_tok, r_alive, r_logp = reference_sample(
        model, ids, mask, 24, gen=torch.Generator().manual_seed(0), **kw
    )
    ended = (~s.mask).any(1)
    assert 2 * int(ended.sum()) >= len(ended) and s.mask[:, -1].any()  # rows were dropped mid-run
    assert torch.equal(s.tokens, r_tok) and torch.equal(s.mask, r_alive)
    torch.testing.assert_close(s.logp, r_logp, atol=1e-5, rtol=0)


def test_sampler_logp_and_entropy_match_full_forward(model, tok):
    ids, mask = _batch(tok, group=2)
    s = lm.sample(
        model,
        ids,
        mask,
        max_new_tokens=10,
        temperature=0.7,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0),
    )
    logits = lm.completion_logits(model, ids, mask, s.tokens, s.mask)
    logp, ent = lm.token_logprobs(logits, s.tokens, 0.7)
    torch.testing.assert_close(logp * s.mask, s.logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent * s.mask, s.entropy, atol=1e-5, rtol=0)


def test_proxy_from_logp_equals_minp_proxy_logprob():
    """The fused proxy (one softmax) equals the objective's own min-p proxy, kept and filtered,
    including the official filter-then-temperature order at T != 1."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 50, generator=g) * 3
    tok = torch.randint(0, 50, (64,), generator=g)
    for T in (1.0, 0.6, 1.5):
        logp_all = F.log_softmax(logits / T, -1)
        logp = logp_all.gather(-1, tok[:, None])[:, 0]
        ours = lm.minp_proxy_from_logp(logp_all, logp, tok, 0.1, torch.logsumexp(logits / T, -1), T)
        ref = minp_proxy_logprob(logits, tok, kappa=0.1, temperature=T)
        kept = ref > -1000
        assert kept.any() and (~kept).any()
        torch.testing.assert_close(ours[kept], ref[kept], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            ours[~kept], ref[~kept], atol=1e-2, rtol=0
        )  # ≈ -1e4 / T in float32


def test_sampler_returns_the_proxy_of_its_own_softmax(tok):
    model = lm.tiny_lm(tok, n_layer=2, n_embd=32, n_head=4, seed=0)
    ids, mask = _batch(tok, group=2)
    s = lm.sample(
        model,
        ids,
        mask,
        max_new_tokens=8,
        temperature=1.3,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(0),
        minp_kappa=0.9,
    )
    logits = lm.completion_logits(model, ids, mask, s.tokens, s.mask)
    ref = minp_proxy_logprob(logits, s.tokens, kappa=0.9, temperature=1.3) * s.mask
    torch.testing.assert_close(s.proxy_logp, ref, atol=1e-2, rtol=0)
    kept = s.mask & (ref > -1000)
    assert kept.any() and (s.mask & ~kept).any()


def test_greedy_matches_argmax_of_full_forward(model, tok):
    ids, mask = _batch(tok, group=1)
    s = lm.sample(
        model,
        ids,
        mask,
        max_new_tokens=6,
        temperature=0.0,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
        minp_kappa=0.02,
    )
    logits = lm.completion_logits(model, ids, mask, s.tokens, s.mask)
    assert torch.equal(logits.argmax(-1)[s.mask], s.tokens[s.mask]) and s.proxy_logp is None


def test_unsupported_architecture_falls_back_to_hf_forward(tok):
    model = lm.tiny_lm(tok, n_layer=1, n_embd=16, n_head=2, seed=0)
    model.config.add_cross_attention = True  # the lean GPT-2 path does not do cross-attention
    assert not kv_decode.supports(model)
    assert isinstance(lm._forward_for(model), lm._HFForward)
