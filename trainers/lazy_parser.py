"""An ``argparse`` parser whose arguments are added on first use, so that ``regrl --help``
does not pay for the imports a command group's flags need.

A domain CLI whose flags come from dataclasses of torch modules (``regrl turbulence``) passes
``populate=fn`` to ``add_parser``; ``fn(parser)`` adds the arguments and sub-commands the
first time the parser parses or prints its help, i.e. only when the user names that command.
The top-level help lists the command from its ``help=`` string alone.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Optional

Populate = Callable[[argparse.ArgumentParser], None]


class LazyParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` plus an optional ``populate`` callback (module docstring).
    Used as the ``parser_class`` of ``regrl``'s sub-commands; sub-parsers inherit it."""

    def __init__(self, *args: Any, populate: Optional[Populate] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._populate = populate

    def ensure_populated(self) -> None:
        """Run the callback once (cleared first, so a callback that parses cannot recurse)."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)

    def _parse_known_args(self, *args: Any, **kwargs: Any):
        # every parse goes through here (parse_args, parse_known_args and a parent's
        # sub-command dispatch alike), on every Python version argparse has had this name
        self.ensure_populated()
        return super()._parse_known_args(*args, **kwargs)

    def format_help(self) -> str:
        self.ensure_populated()
        return super().format_help()

    def format_usage(self) -> str:
        self.ensure_populated()
        return super().format_usage()
