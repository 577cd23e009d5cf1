"""Simulators and tasks of regrl: numpy/torch/gymnasium only, never ray, agents or trainers."""
