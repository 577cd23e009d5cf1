"""RLVR throughput: the rollout sampler vs plain ``model.generate`` on the same model and
batch, measured in the same run, plus learner tokens/s.

The batch has the RLVR rollout shape: ``--prompts`` distinct prompts, each repeated
``--group`` times (a GRPO group). Both sides sample exactly ``--new-tokens`` tokens per row at
temperature 1 with no top-k / top-p (``generate`` gets ``min_new_tokens`` so EOS cannot end
rows early; our sampler runs with ``stop_at_eos=False``). Ours also returns the behaviour
log-prob and entropy of every token and, with ``--lp-reg``, the min-p proxy log-prob: the
extra work of a rollout actor. The two are timed alternately (``--repeats`` rounds) so load
from other processes hits both alike; the ratio is of the medians.

Run: .venv/bin/python benchmarks/rlvr_throughput.py [--model tiny|smollm2] [--prompts 4 --group 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from regrl.agents.models import lm


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="tiny (4-layer, width 128) or smollm2")
    p.add_argument("--prompts", type=int, default=4, help="distinct prompts per call")
    p.add_argument(
        "--group", type=int, default=4, help="completions per prompt (rows = prompts x group)"
    )
    p.add_argument("--new-tokens", type=int, default=24)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lp-reg", action="store_true", help="also compute the min-p proxy log-prob")
    return p.parse_args()


def _model(name: str):
    if name == "tiny":
        from regrl.trainers.rlvr.policy import TINY_ALPHABET

        tok = lm.char_tokenizer(TINY_ALPHABET)
        return lm.tiny_lm(tok, n_layer=4, n_embd=128, n_head=4, seed=0), tok, False
    model, tok = lm.load_lm(name)
    return model, tok, bool(getattr(tok, "chat_template", None))


def _prompts(n: int):
    from regrl.envs.text import get_task

    task, rng = get_task("arithmetic", digits=2), np.random.default_rng(0)
    return [task.sample(rng).prompt for _ in range(n)]


def _time(fn, repeats: int):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _time_pair(a, b, repeats: int):
    """Median seconds of ``a`` and of ``b``, run alternately (a, b, a, b, ...)."""
    ta, tb = [], []
    for _ in range(repeats):
        for fn, ts in ((a, ta), (b, tb)):
            start = time.perf_counter()
            out = fn()
            ts.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb), out


def main() -> None:
    a = _args()
    torch.set_num_threads(a.threads)
    model, tok, chat = _model(a.model)
    rows = [p for p in _prompts(a.prompts) for _ in range(a.group)]
    ids, mask = lm.encode_prompts(tok, rows, chat)
    B, T = len(rows), a.new_tokens
    n_tok = B * T

    def plain():
        torch.manual_seed(0)
        with torch.no_grad():
            return model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=T,
                min_new_tokens=T,
                pad_token_id=tok.pad_token_id,
            )

    def ours():
        gen = torch.Generator().manual_seed(0)
        return lm.sample(
            model,
            ids,
            mask,
            max_new_tokens=T,
            temperature=1.0,
            eos_id=tok.eos_token_id,
            pad_id=tok.pad_token_id,
            generator=gen,
            stop_at_eos=False,
            minp_kappa=0.02 if a.lp_reg else None,
        )

    out, s = plain(), ours()  # warm-up
    assert out.shape[1] - ids.shape[1] == T and s.tokens.shape == (B, T)
    t_plain, t_ours, _ = _time_pair(plain, ours, a.repeats)
    t_learn = _learner(model, ids, mask, s, a.repeats)
    print(
        f"model {a.model}, {a.prompts} prompts x {a.group} = {B} rows x {T} new tokens "
        f"(prompt length {ids.shape[1]}), {a.threads} thread(s), lp-reg proxy: {a.lp_reg}"
    )
    print(f"plain model.generate : {n_tok / t_plain:9.1f} tokens/s  ({t_plain:.3f} s)")
    print(f"rollout sampler      : {n_tok / t_ours:9.1f} tokens/s  ({t_ours:.3f} s)")
    print(f"ratio sampler / generate = {t_plain / t_ours:.3f}   (target >= 1.5)")
    print(f"learner fwd+bwd      : {n_tok / t_learn:9.1f} tokens/s  ({t_learn:.3f} s)")


def _learner(model, ids, mask, s, repeats: int) -> float:
    """One GRPO-style forward + backward over the sampled completions (no optimizer step)."""
    adv = torch.randn(ids.shape[0])

    def step():
        model.zero_grad(set_to_none=True)
        logits = lm.completion_logits(model, ids, mask, s.tokens, s.mask)
        logp, _ = lm.token_logprobs(logits, s.tokens, 1.0)
        loss = -(adv[:, None] * torch.exp(logp - s.logp) * s.mask).sum() / s.mask.sum()
        loss.backward()

    step()
    return _time(step, repeats)[0]


if __name__ == "__main__":
    main()
