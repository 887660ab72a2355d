"""Environment variable expansion in project paths."""

from __future__ import annotations

import os
import re

# Depictio writes `{DATA_ROOT}` (templates) and `$VAR` or `${VAR}` (shell style) in paths.
_BRACED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOLLAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


class UnsetVariableError(ValueError):
    """Raised when a path names an environment variable that is not set."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        super().__init__(
            f"environment variable {name!r} in path {path!r} is not set; "
            f"export {name}=/some/folder before starting depictiod, or write the path out"
        )


def expand_variables(path: str, environ: dict[str, str] | None = None) -> str:
    """Replace `$VAR`, `${VAR}` and `{VAR}` in `path` with values from the environment."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise UnsetVariableError(name, path)
        return env[name]

    expanded = _DOLLAR.sub(substitute, path)
    return _BRACED.sub(substitute, expanded)


def resolve_path(path: str, base_dir: str) -> str:
    """Return `path` made absolute against `base_dir` (the config file's folder), with `~` expanded."""
    expanded = os.path.expanduser(path)
    if not os.path.isabs(expanded):
        expanded = os.path.join(base_dir, expanded)
    return os.path.normpath(expanded)
