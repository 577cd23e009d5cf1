"""The names of the files and folders of a run directory, defined once.

Every kind's run directory (``<runs_root>/<name>/<timestamp>/``, :mod:`regrl.trainers.harness`)
holds these; the kinds, ``regrl sweep``, the evaluators and the benchmarks that read run
directories take the names from here. Standard library only (no torch, no Ray), so
``regrl --help`` and light readers can import it.
"""

from __future__ import annotations

CONFIG_FILE = "config.yaml"
"""The resolved config of the run (what ``regrl train --resume`` and the evaluators read)."""
TB_DIR = "tb"
"""TensorBoard event files (``tensorboard --logdir RUN_DIR/tb``)."""
METRICS_JSONL = "metrics.jsonl"
"""One JSON object of scalar metrics per logged iteration (``step`` and the metrics)."""
SUMMARY_FILE = "summary.json"
"""Written when a run finished: its kind, the time and the last iteration's metrics (what
``regrl sweep`` aggregates; a run without one is unfinished)."""
CHECKPOINT_DIR = "checkpoints"
"""The run's checkpoints, one ``iter_NNNNNN`` folder each (:mod:`regrl.trainers.checkpoint`)."""
EVAL_FILE = "eval.json"
"""The report of ``regrl eval`` on the run."""
LEGACY_OFFLINE_METRICS = "metrics.json"
"""The final metrics offline runs wrote before the offline kind ran on the harness (their
finished marker then); read where such a run is resumed or evaluated, never written: a run now
ends with ``summary.json`` like every kind."""
