"""Range checks of the config dataclasses: ``__post_init__`` calls :func:`require`, and the
config loader turns the ValueError into a ConfigError naming the file and the key."""


def require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)
