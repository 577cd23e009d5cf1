"""regrl: regularised RL methods of recent papers on Ray.

The import packages ``regrl.agents``, ``regrl.envs`` and ``regrl.trainers`` live in the
repository's top-level folders ``agents/``, ``envs/`` and ``trainers/`` (setuptools
``package-dir`` maps them), so an installed regrl owns exactly one top-level name.
"""

__version__ = "0.1.0"
