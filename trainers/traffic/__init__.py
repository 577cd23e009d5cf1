"""RIFT domain: closed-loop fine-tuning of traffic-simulation vehicles on MetaDrive (Chen et al.
2025, arXiv 2505.03344).

- :mod:`~regrl.trainers.traffic.plugin` registers what the domain adds to the core: the
  ``rift_traffic`` and ``rift_metadrive`` environments, the candidate-scorer RLModule spec, the
  RIFT evaluator and the ``planner`` kind (stage-1 imitation);
- :mod:`~regrl.trainers.traffic.cli` adds ``regrl traffic demos|pretrain|compare``;
- :mod:`~regrl.trainers.traffic.rift`: stage 1, the scorer module, evaluation and comparison.
"""
