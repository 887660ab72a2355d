"""Configuration problems and the exception that carries them."""

from __future__ import annotations

import msgspec


class ConfigProblem(msgspec.Struct, frozen=True):
    """One invalid value in a configuration file, with where it is and how to fix it."""

    file: str
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key_path}" if self.key_path else self.file
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """Raised when one or more configuration files are invalid.

    `problems` lists every invalid value found, so a user can fix them all in one pass.
    """

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n".join(f"  - {problem}" for problem in problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid configuration, {count} {noun}:\n{lines}")
