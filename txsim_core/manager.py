"""Finding and loading plugins.

Plugins are found through the entry-point group ``txsim``. The built-in models register through the
same hooks as the plugin named ``txsim``. Two environment variables control discovery:

``TXSIM_DISABLE_PLUGIN_AUTOLOAD=1``
    Load no entry points: only the built-in models (and plugins registered by hand) exist.
``TXSIM_DISABLE_PLUGINS=name,name``
    Do not load these plugins (entry-point names); ``txsim plugins`` shows them as ``blocked``.

A plugin that fails to import, or that implements a hook txsim does not know, is reported with a
:class:`~txsim_core.errors.PluginLoadWarning` and shown as ``failed``; the others keep working.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from typing import Any

import attrs
import pluggy

from txsim_core import hookspecs
from txsim_core.errors import PluginLoadWarning

BUILTIN_PLUGIN = "txsim"
ENV_DISABLE_AUTOLOAD = "TXSIM_DISABLE_PLUGIN_AUTOLOAD"
ENV_DISABLE_PLUGINS = "TXSIM_DISABLE_PLUGINS"


def _core_version() -> str:
    try:
        return importlib.metadata.version("txsim")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@attrs.frozen
class PluginInfo:
    """One plugin as ``txsim plugins`` reports it.

    Args:
        name: the plugin's name (its entry-point name; ``txsim`` for the built-ins).
        distribution: the installed distribution that provides it.
        version: that distribution's version.
        status: ``loaded``, ``failed`` (see ``error``) or ``blocked`` (by TXSIM_DISABLE_PLUGINS).
        error: why loading failed, or ``""``.
        module: the module the entry point names.
        provides: the model kinds (and ``commands``) the plugin implements hooks for.
    """

    name: str
    distribution: str
    version: str
    status: str
    error: str = ""
    module: str = ""
    provides: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return {**attrs.asdict(self), "provides": list(self.provides)}


def _provided(hook_names: list[str]) -> tuple[str, ...]:
    kinds = []
    for hook_name in hook_names:
        short = hook_name.removeprefix("txsim_")
        kinds.append("commands" if short == "register_commands" else short.removesuffix("_models"))
    return tuple(sorted(kinds))


class PluginManager(pluggy.PluginManager):
    """txsim's pluggy plugin manager: hook specs, built-ins and entry points, with provenance.

    Args:
        autoload: load the plugins of the ``txsim`` entry-point group. None (the default) loads
            them unless ``TXSIM_DISABLE_PLUGIN_AUTOLOAD`` is set to a non-empty value.
    """

    def __init__(self, *, autoload: bool | None = None) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        from txsim_core.builtin import plugin as builtin_plugin

        self.register_plugin(
            builtin_plugin, name=BUILTIN_PLUGIN, distribution="txsim", version=_core_version()
        )
        if autoload is None:
            autoload = not os.environ.get(ENV_DISABLE_AUTOLOAD)
        if autoload:
            self.load_entry_points()

    def register_plugin(
        self,
        plugin: object,
        *,
        name: str,
        distribution: str = "",
        version: str = "",
        module: str = "",
    ) -> bool:
        """Register a plugin object (a module or an object with hook implementations).

        Returns whether it was registered; a plugin with an unknown hook is rejected with a warning.
        """
        try:
            self.register(plugin, name=name)
            self.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.is_registered(plugin):
                self.unregister(plugin)
            self._fail(name, distribution, version, module, exc)
            return False
        hooks = [impl_caller.name for impl_caller in self.get_hookcallers(plugin) or ()]
        self._infos[name] = PluginInfo(
            name=name,
            distribution=distribution or name,
            version=version,
            status="loaded",
            module=module or getattr(plugin, "__name__", type(plugin).__name__),
            provides=_provided(hooks),
        )
        return True

    def load_entry_points(self, group: str = hookspecs.PROJECT) -> None:
        """Load every plugin of an entry-point group, reporting the ones that fail."""
        blocked = {
            n.strip() for n in os.environ.get(ENV_DISABLE_PLUGINS, "").split(",") if n.strip()
        }
        seen: set[str] = set()
        for entry_point in importlib.metadata.entry_points(group=group):
            if entry_point.name in seen or entry_point.name in self._infos:
                continue
            seen.add(entry_point.name)
            dist = entry_point.dist
            dist_name = dist.metadata["Name"] if dist is not None else entry_point.name
            version = dist.version if dist is not None else ""
            if entry_point.name in blocked:
                self.set_blocked(entry_point.name)
                self._infos[entry_point.name] = PluginInfo(
                    name=entry_point.name,
                    distribution=dist_name,
                    version=version,
                    status="blocked",
                    module=entry_point.value,
                )
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:
                self._fail(entry_point.name, dist_name, version, entry_point.value, exc)
                continue
            self.register_plugin(
                plugin,
                name=entry_point.name,
                distribution=dist_name,
                version=version,
                module=entry_point.value,
            )

    def _fail(
        self, name: str, distribution: str, version: str, module: str, exc: BaseException
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self._infos[name] = PluginInfo(
            name=name,
            distribution=distribution or name,
            version=version,
            status="failed",
            error=error,
            module=module,
        )
        warnings.warn(
            f"txsim plugin {name!r} ({distribution or name}) failed to load and is "
            f"skipped: {error}",
            PluginLoadWarning,
            stacklevel=3,
        )

    def mark_failed(self, name: str, exc: BaseException) -> None:
        """Unregister a loaded plugin that misbehaved later, and report it."""
        info = self._infos[name]
        plugin = self.get_plugin(name)
        if plugin is not None:
            self.unregister(plugin)
        self._fail(name, info.distribution, info.version, info.module, exc)

    def info(self, name: str) -> PluginInfo:
        """The record of the plugin registered under ``name``."""
        return self._infos[name]

    def plugin_infos(self) -> list[PluginInfo]:
        """Every plugin txsim knows of (loaded, failed or blocked), built-ins first."""
        return sorted(self._infos.values(), key=lambda i: (i.name != BUILTIN_PLUGIN, i.name))
