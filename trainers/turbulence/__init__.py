"""SMARL domain: learned turbulence closures (Mojgani et al. 2023, arXiv 2312.00907).

- :mod:`~regrl.trainers.turbulence.plugin` registers what the domain adds to the core: the
  ``smarl_turb2d`` environment and its evaluator (closure comparison against the filtered DNS);
- :mod:`~regrl.trainers.turbulence.cli` adds ``regrl turbulence reference|dataset|compare``;
- :mod:`~regrl.trainers.turbulence.smarl`: evaluation and the reference command;
- :mod:`~regrl.trainers.turbulence.closures`: the supervised-closure dataset and comparison.
"""
