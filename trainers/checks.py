"""Range checks of the config dataclasses: ``__post_init__`` calls :func:`require`, and the
config loader turns the ValueError into a ConfigError naming the file and the key.
Imports nothing heavy, so the CLI can catch ConfigError without loading torch."""


class ConfigError(ValueError):
    """A configuration problem the user must fix; the CLI prints it and exits with status 2."""


def require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)
