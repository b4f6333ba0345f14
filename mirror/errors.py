"""Errors the mirror raises for operator mistakes in its configuration."""

from __future__ import annotations

from collections.abc import Iterable

Loc = tuple[str | int, ...]
"""A key path into a configuration document, e.g. ``("flows", 1, "topics")``."""


class ConfigError(Exception):
    """A configuration file is unreadable or invalid.

    The message is meant to be printed as is: one ``file:line: problem`` line per problem.
    """


class LocatedValueError(ValueError):
    """Problems found by a model-level check, each at a key path below the model.

    Pydantic reports errors raised by a model validator at the model itself; carrying the
    paths lets the error report name ``flows[1].source`` and its line instead.
    """

    def __init__(self, problems: Iterable[tuple[Loc, str]]) -> None:
        self.problems: tuple[tuple[Loc, str], ...] = tuple(problems)
        super().__init__("; ".join(message for _, message in self.problems))

    @classmethod
    def at(cls, loc: Loc, message: str) -> LocatedValueError:
        return cls([(loc, message)])


class CliError(Exception):
    """An operator mistake or unusable environment: the CLI prints it as one line, exit 2.

    Lives here, not in mirror.cli, so that `python -m mirror.cli` (whose module is
    `__main__`) catches the same class that command modules raise.
    """
