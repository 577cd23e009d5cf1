"""The RLVR learner: recomputes token log-probs, sums the configured objective terms and
steps AdamW; on-policy (one optimizer step per rollout batch) or off-policy mini-batches."""

from __future__ import annotations

import copy
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict, Optional

import torch

from regrl.agents.models import lm
from regrl.agents.objectives import terms as term_layer
from regrl.trainers.checkpoint import load_torch_state
from regrl.trainers.rlvr.config import LMConfig
from regrl.trainers.rlvr.policy import build_policy, cpu_state_dict, save_policy
from regrl.trainers.rlvr.terms import TermContext, term_agg, token_context, total_loss

LEARNER_STATE = "learner_state.pt"
BATCH_KEYS = ("prompt_ids", "prompt_mask", "tokens", "mask", "logp", "advantages")


def proxy_kappa(cfg) -> Optional[float]:
    """kappa of the term that reads the min-p proxy: the rollout then computes proxy log-probs."""
    return term_layer.proxy_kappa(cfg.objective.terms)


class Learner:
    def __init__(self, cfg, model=None, tokenizer=None):
        if cfg.resources.torch_threads:
            torch.set_num_threads(cfg.resources.torch_threads)
        self.cfg = cfg
        self.device = torch.device(cfg.resources.device)
        if model is None:
            model, tokenizer = build_policy(cfg.model, seed=cfg.seed)
        self.model, self.tokenizer = model.to(self.device), tokenizer
        # frozen policies by checkpoint; key None = the initial policy (a copy of this one)
        self.references = {
            key: self._frozen(copy.deepcopy(self.model)) if key is None else self._load_demo(key)
            for key in term_layer.reference_keys(cfg.objective.terms)
        }
        t = cfg.training
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay
        )
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.version = 0
        self.term_state: Dict[str, float] = {}  # stateful terms' controllers (adaptive_entropy)
        self.rank, self.world_size = 0, 1  # init_distributed joins a data-parallel group

    def _frozen(self, model):
        model.eval().requires_grad_(False)
        return model.to(self.device)

    def _load_demo(self, checkpoint: str):
        model, tokenizer = build_policy(LMConfig(path=checkpoint))
        if (
            len(tokenizer) != len(self.tokenizer)
            or tokenizer.get_vocab() != self.tokenizer.get_vocab()
        ):
            raise ValueError(
                f"demo_kl checkpoint {checkpoint}: its tokenizer differs from the "
                "policy's; pi_BC must be fine-tuned from the same model"
            )
        return self._frozen(model)

    # ------------------------------------------------------------------ weights and state
    def weights(self) -> Dict[str, torch.Tensor]:
        return cpu_state_dict(self.model)

    def save(self, directory: str) -> None:
        save_policy(self.model, self.tokenizer, Path(directory))
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "version": self.version,
                "generator": self.generator.get_state(),
                "term_state": dict(self.term_state),
            },
            Path(directory) / LEARNER_STATE,
        )

    def restore(self, directory: str) -> None:
        from transformers import AutoModelForCausalLM  # optional extra: transformers (regrl[lm])

        saved = AutoModelForCausalLM.from_pretrained(
            str(Path(directory) / "policy"), local_files_only=True
        )
        self.model.load_state_dict(saved.state_dict())
        state = load_torch_state(Path(directory) / LEARNER_STATE)  # weights_only: no code runs
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.version = int(state["version"])
        self.term_state = {k: float(v) for k, v in state.get("term_state", {}).items()}

    # ------------------------------------------------------------------ data parallel
    def init_distributed(self, init_method: str, rank: int, world_size: int) -> None:
        """Join the torch.distributed group of ``world_size`` data-parallel learners (gloo on
        CPU, nccl on CUDA) and take rank 0's weights, so every replica starts identical."""
        import torch.distributed as dist  # lazy: multi-learner (DDP) runs only

        backend = "nccl" if self.device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend,
            init_method=init_method,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(minutes=10),
        )
        self.rank, self.world_size = rank, world_size
        with torch.no_grad():
            for tensor in self.model.state_dict().values():  # views of the parameters
                dist.broadcast(tensor, 0)
        if None in self.references:  # the frozen reference is the (broadcast) initial policy
            self.references[None].load_state_dict(self.model.state_dict())

    def _all_reduce(self, flat: torch.Tensor) -> torch.Tensor:
        """Sum over the learners (identity for one learner)."""
        if self.world_size > 1:
            import torch.distributed as dist  # lazy: multi-learner (DDP) runs only

            dist.all_reduce(flat)
        return flat

    def _reduce_grads(self) -> None:
        """Sum gradients over learners. Each learner's loss is already scaled by the
        mini-batch's global token / sequence counts, so the sum is the full-batch gradient."""
        if self.world_size == 1:
            return
        params = [p for p in self.model.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self._all_reduce(torch.cat([g.reshape(-1) for g in grads]))
        for p, part in zip(params, flat.split([p.numel() for p in params])):
            p.grad = part.view_as(p).clone()

    def _shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This learner's contiguous part of a mini-batch's rows (whole sequences)."""
        bounds = [round(i * len(rows) / self.world_size) for i in range(self.world_size + 1)]
        return rows[bounds[self.rank] : bounds[self.rank + 1]]

    # ------------------------------------------------------------------ update
    def update(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """Epochs x mini-batches of optimizer steps on one rollout batch of N sequences.

        With several data-parallel learners every one receives the whole batch, draws the same
        mini-batch order (same generator) and computes gradients on its shard of each
        mini-batch, so the update equals the single-learner one."""
        missing = [k for k in BATCH_KEYS if k not in batch]
        if missing:
            raise ValueError(f"learner batch is missing {missing}")
        t, n = self.cfg.training, batch["tokens"].shape[0]
        start, tokens, sums, count = time.perf_counter(), 0, {}, 0
        tensors = {k: v for k, v in batch.items() if torch.is_tensor(v)}
        # Eval mode on purpose: dropout would make the recomputed log-probs differ from the
        # behaviour ones, so the on-policy ratio would not be 1 (verl disables it too).
        self.model.eval()
        for _ in range(t.epochs):
            order = torch.randperm(n, generator=self.generator)
            for rows in order.chunk(t.minibatches):
                metrics, n_tok = self._minibatch(tensors, rows)
                tokens += n_tok
                count += 1
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
        self.version += 1
        out = {f"learner/{k}": v / count for k, v in sums.items()}
        out["perf/learner_tokens_per_s"] = tokens / max(time.perf_counter() - start, 1e-9)
        out["learner/optimizer_steps"] = float(count)
        return out

    def _minibatch(self, batch: Dict[str, torch.Tensor], rows: torch.Tensor):
        """One optimizer step on ``rows``; this learner back-propagates its shard in
        micro-batches. Token-mean terms are weighted by valid tokens / the mini-batch's valid
        tokens, sequence-mean terms by sequences / its sequences, so the summed gradient is
        the full mini-batch loss's regardless of micro-batch and shard boundaries; a term's
        metrics get the same weights (token fractions are exact mini-batch values)."""
        self.optimizer.zero_grad(set_to_none=True)
        n_rows, n_tok = len(rows), int(batch["mask"][rows].sum())
        mine, size = self._shard(rows), self.cfg.training.micro_batch_size
        sums: Dict[str, float] = {}
        for lo in range(0, len(mine), size):
            micro = {k: v[mine[lo : lo + size]].to(self.device) for k, v in batch.items()}
            rows_share = micro["tokens"].shape[0] / n_rows
            tok_share = float(micro["mask"].sum()) / max(n_tok, 1)
            share = lambda spec, t=tok_share, r=rows_share: (
                t if term_agg(spec) == "token-mean" else r
            )
            loss, metrics = self._micro_loss(micro, share)
            loss.backward()
            metrics["entropy"] = metrics["entropy"] * tok_share
            for k, v in metrics.items():  # shares of the mini-batch values
                sums[k] = sums.get(k, 0.0) + float(v)
        sums = self._reduce_metrics(sums)
        self._reduce_grads()
        clip = self.cfg.training.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), clip if clip else float("inf")
        )
        sums["grad_norm"] = float(norm)
        self.optimizer.step()
        term_layer.update_state(self.cfg.objective.terms, self.term_state, sums)
        return sums, n_tok

    def _reduce_metrics(self, sums: Dict[str, float]) -> Dict[str, float]:
        """Sum the learners' shares of each metric (every learner has the same keys)."""
        if self.world_size == 1:
            return sums
        keys = sorted(sums)
        flat = self._all_reduce(
            torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=self.device)
        )
        return dict(zip(keys, flat.tolist()))

    def _micro_loss(self, mb: Dict[str, torch.Tensor], share):
        temperature = self.cfg.rollout.temperature
        ctx = self._context(mb, temperature)
        loss, metrics = total_loss(ctx, self.cfg.objective.terms, share)
        m = ctx.mask.to(ctx.entropy.dtype)
        metrics["entropy"] = ((ctx.entropy * m).sum() / m.sum().clamp_min(1)).detach()
        return loss, metrics

    def _context(self, mb: Dict[str, torch.Tensor], temperature: float) -> TermContext:
        """The term context of a micro-batch: pi_theta's logits at the rollout temperature, the
        rollout's behaviour log-probs and proxy, and the frozen policies the terms read."""
        args = (mb["prompt_ids"], mb["prompt_mask"], mb["tokens"], mb["mask"])
        logits = lm.completion_logits(self.model, *args).float() / temperature
        with torch.no_grad():
            reference = {
                key: lm.completion_logits(model, *args).float() / temperature
                for key, model in self.references.items()
            }
        return token_context(
            logits=logits,
            tokens=mb["tokens"],
            old_logp=mb["logp"],
            advantages=mb["advantages"],
            mask=mb["mask"],
            proxy_logp=mb.get("proxy_logp"),
            reference=reference,
            term_state=self.term_state,
        )
