"""Lean KV-cached decoding for the causal LMs RLVR samples from (GPT-2, Llama-family such as
SmolLM2): a preallocated (static) key/value cache and one hand-written forward per step that
calls the Hugging Face modules' own weights and sub-modules.

Why not ``model(...)`` with a ``DynamicCache``: at rollout batch shapes on CPU the HF forward
spends most of a decode step outside the matmuls (mask construction, cache concatenation,
output objects, python GELU), and ``torch.cat`` on a growing cache copies it every step. Here
the cache is written in place, the attention mask is one boolean row per sequence, and the
prompt prefill runs once per distinct prompt (a GRPO group shares its prompt).

An architecture not in :data:`ADAPTERS` is simply not fast-pathed (:func:`supports`); the
caller falls back to the HF forward. Numerics match the HF forward up to float round-off
(pinned by tests/agents/test_kv_decode.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F


@dataclass
class StaticKV:
    """Preallocated per-layer keys/values [B, H_kv, T_max, D] and key validity [B, T_max]."""

    k: List[torch.Tensor]
    v: List[torch.Tensor]
    valid: torch.Tensor
    length: int = 0

    @classmethod
    def empty(
        cls, n_layers: int, batch: int, heads: int, t_max: int, head_dim: int, like: torch.Tensor
    ) -> "StaticKV":
        shape = (batch, heads, t_max, head_dim)
        kv = lambda: [like.new_zeros(shape) for _ in range(n_layers)]  # noqa: E731
        return cls(kv(), kv(), torch.zeros(batch, t_max, dtype=torch.bool, device=like.device))

    def expand_rows(self, index: torch.Tensor, t_max: int) -> "StaticKV":
        """A cache of ``len(index)`` rows (row i copies row ``index[i]``) with room for t_max."""
        n, t = len(index), self.length
        out = StaticKV.empty(
            len(self.k), n, self.k[0].shape[1], t_max, self.k[0].shape[-1], self.k[0]
        )
        for src, dst in ((self.k, out.k), (self.v, out.v)):
            for a, b in zip(src, dst):
                b[:, :, :t] = a[index, :, :t]
        out.valid[:, :t] = self.valid[index, :t]
        out.length = t
        return out

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep only rows ``index`` (drops finished sequences so they cost no compute)."""
        self.k = [a[index] for a in self.k]
        self.v = [a[index] for a in self.v]
        self.valid = self.valid[index]


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: StaticKV, layer: int, scale: float
) -> torch.Tensor:
    """Write k, v [B, H_kv, S, D] at the cache end; attend q [B, H, S, D] to all valid keys.

    The S new keys are causal among themselves. A left-pad query sees no key at all; SDPA
    returns 0 for such a row (torch >= 2.5), so pad positions never carry NaN into the cache
    (the left-padded batches in tests/agents/test_kv_decode.py would show it).
    """
    start, S = cache.length, q.shape[2]
    end = start + S
    cache.k[layer][:, :, start:end] = k
    cache.v[layer][:, :, start:end] = v
    keys, values = cache.k[layer][:, :, :end], cache.v[layer][:, :, :end]
    if S == 1:
        mask = cache.valid[:, None, None, :end]
    else:
        j = torch.arange(end, device=q.device)
        i = torch.arange(start, end, device=q.device)
        causal = j[None, :] <= i[:, None]
        mask = cache.valid[:, None, None, :end] & causal
    gqa = q.shape[1] != k.shape[1]
    return F.scaled_dot_product_attention(
        q, keys, values, attn_mask=mask, scale=scale, enable_gqa=gqa
    )


# ------------------------------------------------------------------------------ adapters
class _GPT2:
    """GPT-2 (``GPT2LMHeadModel``): learned positions, fused c_attn, tanh-GELU MLP."""

    def __init__(self, model):
        self.m, self.t = model, model.transformer
        cfg = model.config
        self.layers, self.heads = list(self.t.h), cfg.n_head
        self.kv_heads, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.scale = self.head_dim**-0.5 if cfg.scale_attn_weights else 1.0

    def embed(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.t.wte(ids) + self.t.wpe(pos)

    def block(self, i: int, x: torch.Tensor, pos: torch.Tensor, cache: StaticKV) -> torch.Tensor:
        layer = self.layers[i]
        B, S, E = x.shape
        q, k, v = (
            layer.attn.c_attn(layer.ln_1(x)).view(B, S, 3, self.heads, self.head_dim).unbind(2)
        )
        a = _attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), cache, i, self.scale)
        x = x + layer.attn.c_proj(a.transpose(1, 2).reshape(B, S, E))
        h = F.gelu(layer.mlp.c_fc(layer.ln_2(x)), approximate="tanh")  # = HF's gelu_new, one kernel
        return x + layer.mlp.c_proj(h)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.lm_head(self.t.ln_f(x))


class _Llama:
    """Llama family (SmolLM2): RMSNorm, rotary positions, grouped-query attention, SwiGLU."""

    def __init__(self, model):
        self.m, self.t = model, model.model
        cfg = model.config
        self.layers, self.heads = list(self.t.layers), cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scale = self.head_dim**-0.5
        self._rope: Tuple[torch.Tensor, torch.Tensor] | None = None

    def embed(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = self.t.embed_tokens(ids)
        cos, sin = self._rope_table(int(pos.max()) + 1, x)
        self._cs = cos[pos], sin[pos]  # [B, S, D] for this forward
        return x

    def _rope_table(self, n: int, x: torch.Tensor):
        """cos/sin for positions [0, n) from the model's own rotary module (its scaling rules)."""
        if self._rope is None or self._rope[0].shape[0] < n:
            n = max(n, 2 * (self._rope[0].shape[0] if self._rope else 64))
            cos, sin = self.t.rotary_emb(x, torch.arange(n, device=x.device)[None])
            self._rope = (cos[0], sin[0])
        return self._rope

    def block(self, i: int, x: torch.Tensor, pos: torch.Tensor, cache: StaticKV) -> torch.Tensor:
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        layer, (B, S, _) = self.layers[i], x.shape
        at, h = layer.self_attn, layer.input_layernorm(x)
        q = at.q_proj(h).view(B, S, self.heads, self.head_dim).transpose(1, 2)
        k = at.k_proj(h).view(B, S, self.kv_heads, self.head_dim).transpose(1, 2)
        v = at.v_proj(h).view(B, S, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *self._cs, unsqueeze_dim=1)
        a = _attend(q, k, v, cache, i, self.scale)
        x = x + at.o_proj(a.transpose(1, 2).reshape(B, S, -1))
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.lm_head(self.t.norm(x))


ADAPTERS: Dict[str, Callable] = {"gpt2": _GPT2, "llama": _Llama}


def supports(model) -> bool:
    """True when ``model`` has a lean decoding adapter (else use the HF forward)."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in ADAPTERS:
        return False
    if cfg.model_type == "gpt2":
        return not cfg.add_cross_attention and cfg.activation_function in (
            "gelu_new",
            "gelu_pytorch_tanh",
        )
    return getattr(cfg, "hidden_act", "silu") == "silu" and not getattr(cfg, "sliding_window", None)


class Decoder:
    """Prefill + one-token steps over a :class:`StaticKV`; returns last-position logits."""

    def __init__(self, model):
        self.a = ADAPTERS[model.config.model_type](model)

    def _forward(self, ids: torch.Tensor, pos: torch.Tensor, cache: StaticKV) -> torch.Tensor:
        x = self.a.embed(ids, pos)
        for i in range(len(self.a.layers)):
            x = self.a.block(i, x, pos, cache)
        cache.length += ids.shape[1]
        return self.a.head(x[:, -1:, :])[:, 0, :]

    def prefill(
        self, ids: torch.Tensor, mask: torch.Tensor, t_max: int
    ) -> Tuple[torch.Tensor, StaticKV]:
        """Logits after left-padded prompts [B, P] and a cache with room for t_max positions.

        Identical rows (a GRPO group's prompt) are run once and their cache copied.
        """
        rows = torch.cat([ids, mask.long()], dim=1)
        uniq, inverse = torch.unique(rows, dim=0, return_inverse=True)
        u_ids, u_mask = uniq[:, : ids.shape[1]], uniq[:, ids.shape[1] :].bool()
        small = StaticKV.empty(
            len(self.a.layers),
            len(uniq),
            self.a.kv_heads,
            ids.shape[1],
            self.a.head_dim,
            self.a.m.lm_head.weight,
        )
        small.valid[:] = u_mask
        pos = (u_mask.long().cumsum(-1) - 1).clamp_min(0)
        logits = self._forward(u_ids, pos, small)
        return logits[inverse], small.expand_rows(inverse, t_max)

    def step(self, tok: torch.Tensor, pos: torch.Tensor, cache: StaticKV) -> torch.Tensor:
        """Logits [B, V] after feeding one token per row at positions ``pos`` [B]."""
        cache.valid[:, cache.length] = True
        return self._forward(tok[:, None], pos[:, None], cache)
