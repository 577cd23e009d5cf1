"""SMARL domain: learned turbulence closures (Mojgani et al. 2023, arXiv 2312.00907).

- :mod:`~trainers.turbulence.plugin` registers what the domain adds to the core: the
  ``smarl_turb2d`` environment and its evaluator (closure comparison against the filtered DNS);
- :mod:`~trainers.turbulence.cli` adds ``regrl turbulence reference|dataset|compare``;
- :mod:`~trainers.turbulence.smarl`: evaluation and the reference command;
- :mod:`~trainers.turbulence.closures`: the supervised-closure dataset and comparison.
"""
