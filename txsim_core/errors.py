"""The exceptions txsim raises.

Every error that a user can cause derives from :class:`TxsimError`; the ``txsim`` command prints
its message without a traceback and exits non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class TxsimError(Exception):
    """Base class of every error that txsim raises on purpose."""


class ConfigError(TxsimError, ValueError):
    """A configuration or model parameter is invalid (unknown, wrong type, out of range)."""


class PluginError(TxsimError):
    """A plugin could not be loaded, is malformed, or conflicts with another plugin."""


class UnknownModelError(TxsimError, KeyError):
    """No registered model of the requested kind has the requested name.

    Args:
        kind: the model kind that was searched (``"adc"``, ``"solver"``, ...).
        name: the name that was asked for.
        available: the names registered for that kind.
    """

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        super().__init__(self._message())

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (to a sweep's or a launcher's parent)
        return (type(self), (self.kind, self.name, self.available))

    def _message(self) -> str:
        close = difflib.get_close_matches(self.name, self.available, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        names = ", ".join(repr(n) for n in self.available) or "(none)"
        return (
            f"Unknown {self.kind} model {self.name!r}.{hint} Available {self.kind} models: {names}. "
            f"Models come from installed plugins, so a plugin may be missing: "
            f"run `txsim list-models --kind {self.kind}` and `txsim plugins` to see what is installed."
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class PluginLoadWarning(UserWarning):
    """A plugin failed to load; the others keep working."""
