"""RLVR for language-model policies on Ray core: rollout actors that generate, reward actors
that verify, and a learner that sums ``regrl.agents.objectives`` terms and publishes weights
(``kind: rlvr`` experiment files), plus SFT on task demonstrations (``kind: sft``)."""
