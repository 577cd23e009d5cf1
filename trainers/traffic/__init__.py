"""RIFT domain: closed-loop fine-tuning of traffic-simulation vehicles on MetaDrive (Chen et al.
2025, arXiv 2505.03344).

- :mod:`~regrl.trainers.traffic.plugin` registers what the domain adds to the core: the
  ``rift_traffic`` and ``rift_metadrive`` environments, the candidate-scorer RLModule spec, the
  RIFT evaluator and the ``planner`` kind (stage-1 imitation);
- :mod:`~regrl.trainers.traffic.cli` adds ``regrl traffic demos|pretrain|compare``;
- :mod:`~regrl.trainers.traffic.pretrain`: stage 1, imitation of the planner (the ``planner`` kind);
- :mod:`~regrl.trainers.traffic.env_factory` and :mod:`~regrl.trainers.traffic.scorer_module`:
  stage 2, the env whose candidates the frozen planner proposes and the RLModule scoring them;
- :mod:`~regrl.trainers.traffic.evaluation`: rollouts, policies and ``regrl eval`` of a run;
- :mod:`~regrl.trainers.traffic.compare`, :mod:`~regrl.trainers.traffic.tables`,
  :mod:`~regrl.trainers.traffic.bev`: ``regrl traffic compare``, its tables, 95% intervals
  and bars (numpy only: no torch, no Ray) and its bird's-eye views;
- :mod:`~regrl.trainers.traffic.planner_io` and :mod:`~regrl.trainers.traffic.names`: loading
  and feeding the planner; the names that light code (the CLI's checks) shares.
"""
