"""Episode callbacks: environments report diagnostics in ``info["metrics"]`` on their last
step; they reach TensorBoard as ``env/<name>`` (mean over the iteration's episodes)."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ray.rllib.callbacks.callbacks import RLlibCallback

NAMESPACE = "regrl"


def last_step_metrics(infos: Any) -> Optional[Dict[str, float]]:
    """``info["metrics"]`` of a single-agent info dict or the first agent that has one."""
    if isinstance(infos, dict) and isinstance(infos.get("metrics"), dict):
        return infos["metrics"]
    if isinstance(infos, dict):
        for value in infos.values():
            if isinstance(value, dict) and isinstance(value.get("metrics"), dict):
                return value["metrics"]
    return None


class RegrlCallbacks(RLlibCallback):
    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        metrics = last_step_metrics(episode.get_infos(-1))
        if not metrics or metrics_logger is None:
            return
        for key, value in metrics.items():
            metrics_logger.log_value((NAMESPACE, key), float(value), reduce="mean", window=100)
        if "diverged" in metrics:
            metrics_logger.log_value(
                (NAMESPACE, "divergences_total"), float(metrics["diverged"]), reduce="lifetime_sum"
            )
