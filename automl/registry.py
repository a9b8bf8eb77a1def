"""Name -> entry tables (searchers, pruners): one lookup, one error for an unknown name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from automl.errors import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, *, flag: str, what: str) -> T:
    """The entry `name` of `registry`.

    Raises:
        ConfigError: `--FLAG NAME: unknown WHAT; choose one of ...` listing the registry's names.
    """
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"--{flag} {name}: unknown {what}; choose one of "
                          f"{', '.join(registry)}") from None
