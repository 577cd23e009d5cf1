"""Models and objectives of regrl: torch only, never ray, never envs."""
