"""Looking up and building models by kind and name.

:func:`list_models`, :func:`get_spec`, :func:`build_model` and :func:`resolve_model` use one
process-wide :class:`Registry` built on first use; :func:`reset_registry` rebuilds it (after
installing a plugin, or in tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import attrs

from txsim_core import interfaces
from txsim_core.errors import ConfigError, PluginError, UnknownModelError
from txsim_core.manager import PluginManager
from txsim_core.params import make_params
from txsim_core.specs import Kind, ModelSpec, normalize_name

INTERFACES: dict[Kind, type] = {
    Kind.DAC: interfaces.DAC,
    Kind.ADC: interfaces.ADC,
    Kind.MAPPING: interfaces.Mapping,
    Kind.SOLVER: interfaces.ArraySolver,
    Kind.UPDATE: interfaces.UpdateModel,
}
"""The abstract class every model of a kind derives from."""


class Registry:
    """Every model that the plugins of one :class:`PluginManager` provide, by kind and name.

    Args:
        manager: where the models come from. None: a new manager, with autoload per the
            environment, made (and plugins loaded) on first use.
    """

    def __init__(self, manager: PluginManager | None = None) -> None:
        self._manager = manager
        self._specs: dict[Kind, dict[str, ModelSpec]] | None = None

    @property
    def manager(self) -> PluginManager:
        """The plugin manager the models come from."""
        if self._manager is None:
            self._manager = PluginManager()
        return self._manager

    def _collect(self) -> dict[Kind, dict[str, ModelSpec]]:
        if self._specs is not None:
            return self._specs
        specs: dict[Kind, dict[str, ModelSpec]] = {kind: {} for kind in Kind}
        for kind in Kind:
            hook = getattr(self.manager.hook, f"txsim_{kind.value}_models")
            for impl in hook.get_hookimpls():
                try:
                    returned = list(impl.function() or ())
                except Exception as exc:  # a plugin's bug must not break the others
                    self.manager.mark_failed(impl.plugin_name, exc)
                    continue
                for spec in returned:
                    spec = self._stamp(kind, impl.plugin_name, spec)
                    existing = specs[kind].get(spec.name)
                    if existing is not None:
                        raise PluginError(
                            f"The {kind.value} model {spec.name!r} is provided twice: by "
                            f"{existing.plugin!r} ({existing.provider}) and by {spec.plugin!r} "
                            f"({spec.provider}). Uninstall one of them, or block one with "
                            "TXSIM_DISABLE_PLUGINS."
                        )
                    specs[kind][spec.name] = spec
        self._specs = specs
        return specs

    def _stamp(self, kind: Kind, plugin_name: str, spec: Any) -> ModelSpec:
        where = f"plugin {plugin_name!r}, hook txsim_{kind.value}_models"
        if not isinstance(spec, ModelSpec):
            raise PluginError(f"Expected ModelSpec records from {where}, but got {spec!r}.")
        if spec.kind is not None and Kind(spec.kind) is not kind:
            raise PluginError(
                f"Expected a {kind.value} model from {where}, but {spec.name!r} "
                f"declares kind {Kind(spec.kind).value!r}."
            )
        base = INTERFACES[kind]
        if not (isinstance(spec.factory, type) and issubclass(spec.factory, base)):
            raise PluginError(
                f"Expected the factory of {spec.name!r} ({where}) to be a subclass "
                f"of {base.__module__}.{base.__qualname__}, but got {spec.factory!r}."
            )
        if not attrs.has(spec.params):
            raise PluginError(
                f"Expected the params of {spec.name!r} ({where}) to be an attrs "
                f"class, but got {spec.params!r}."
            )
        info = self.manager.info(plugin_name)
        return attrs.evolve(
            spec,
            kind=kind,
            plugin=plugin_name,
            distribution=info.distribution,
            version=info.version,
        )

    def specs(self, kind: Kind | str | None = None) -> list[ModelSpec]:
        """The registered models, sorted by kind and name; only one kind's if ``kind`` is given."""
        collected = self._collect()
        kinds = list(Kind) if kind is None else [Kind.parse(kind)]
        return [collected[k][name] for k in kinds for name in sorted(collected[k])]

    def get(self, kind: Kind | str, name: str) -> ModelSpec:
        """The spec of one model; :class:`UnknownModelError` if there is none of that name."""
        kind = Kind.parse(kind)
        by_name = self._collect()[kind]
        key = normalize_name(name)
        if key not in by_name:
            raise UnknownModelError(kind.value, str(name), by_name)
        return by_name[key]

    def build(self, kind: Kind | str, name: str, **params: Any) -> interfaces.Model:
        """A new model instance; :class:`ConfigError` for bad parameters."""
        spec = self.get(kind, name)
        context = f"{Kind.parse(kind).value} model {spec.name!r}"
        return cast(
            interfaces.Model, spec.factory(make_params(spec.params, params, context=context))
        )

    def resolve(self, kind: Kind | str, value: Any) -> interfaces.Model:
        """Build a model from any of the forms a configuration slot accepts.

        Args:
            kind: the slot's kind.
            value: a name (``"sar"``); a pair ``(name, {params})``; a mapping with the key
                ``name`` plus parameters (``{"name": "sar", "bits": 6}``, as in TOML); an
                instance of a registered model's parameter class; a registered model class
                (built with default parameters); or a model instance of the kind, used as is.
        """
        kind = Kind.parse(kind)
        if isinstance(value, INTERFACES[kind]):
            return cast(interfaces.Model, value)
        if isinstance(value, str):
            return self.build(kind, value)
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            return self.build(kind, value[0], **dict(value[1]))
        if isinstance(value, Mapping):
            params = dict(value)
            if "name" not in params:
                raise ConfigError(
                    f"Expected the {kind.value} settings to name a model with the "
                    f"key 'name', but got {value!r}."
                )
            return self.build(kind, params.pop("name"), **params)
        for spec in self.specs(kind):
            if value is spec.factory:
                return cast(interfaces.Model, spec.factory(spec.params()))
            if type(value) is spec.params:
                return cast(interfaces.Model, spec.factory(value))
        raise ConfigError(
            f"Expected a {kind.value} model as a name, (name, params), a mapping with 'name', a "
            f"registered parameter object or class, or a model instance, but got {value!r}."
        )


_registry: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry (built, and plugins loaded, on first use)."""
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry


def reset_registry(registry: Registry | None = None) -> Registry:
    """Replace the process-wide registry (a fresh one by default) and return it."""
    global _registry
    _registry = registry if registry is not None else Registry()
    return _registry


def list_models(kind: Kind | str | None = None) -> list[ModelSpec]:
    """Every registered model (of one kind if given), sorted by kind and name."""
    return default_registry().specs(kind)


def get_spec(kind: Kind | str, name: str) -> ModelSpec:
    """The registered spec of one model; :class:`UnknownModelError` if there is none."""
    return default_registry().get(kind, name)


def build_model(kind: Kind | str, name: str, **params: Any) -> interfaces.Model:
    """Build a ready model: ``build_model("adc", "sar", bits=6)``.

    Raises :class:`UnknownModelError` for an unknown name and :class:`ConfigError` for an unknown
    parameter or an invalid value.
    """
    return default_registry().build(kind, name, **params)


def resolve_model(kind: Kind | str, value: Any) -> interfaces.Model:
    """Build a model from any slot form; see :meth:`Registry.resolve`."""
    return default_registry().resolve(kind, value)
