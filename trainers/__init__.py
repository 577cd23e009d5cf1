"""Orchestration of regrl: configs, CLI, Ray/RLlib glue. The only package that imports ray."""
