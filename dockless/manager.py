"""A fresh plugin manager per call: built-ins from one source, then the ``dockless`` entry points.

Each hook implementation is called on its own, so a failing plugin is named in one clear error.
"""
from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from types import ModuleType

import pluggy

from dockless import hookspecs
from dockless.markers import PROJECT
from dockless.registry import PluginError, Registry

BUILTIN_PREFIX = "dockless."


def builtin_plugins() -> list[tuple[str, ModuleType]]:
    from plugins import BUILTINS  # the one source of built-in plugins

    return [(BUILTIN_PREFIX + name, module) for name, module in BUILTINS]


def plugin_manager(
    *, entry_points: bool = True, disabled: Iterable[str] = (), extra: Iterable[object] = ()
) -> pluggy.PluginManager:
    """Build a plugin manager. Tests pass ``entry_points=False`` and their own ``extra`` plugins."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = set(disabled)
    for name, module in builtin_plugins():
        if name not in disabled and name.removeprefix(BUILTIN_PREFIX) not in disabled:
            pm.register(module, name=name)
    for plugin in extra:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if name not in disabled:
            pm.register(plugin, name=name)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=PROJECT):
            if ep.name in disabled or pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party package must not hide which one
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
                    f"disable it with DOCKLESS_DISABLE_PLUGINS={ep.name}"
                ) from exc
            pm.register(plugin, name=ep.name)
    pm.check_pending()
    return pm


def plugin_versions(pm: pluggy.PluginManager) -> dict[str, str]:
    """Plugin name → distribution version (``builtin`` for ours)."""
    out: dict[str, str] = {}
    dists = {name: dist for plugin, dist in pm.list_plugin_distinfo() for name in [pm.get_name(plugin)]}
    for name, _plugin in pm.list_name_plugin():
        if name in dists:
            out[name] = f"{dists[name].project_name} {dists[name].version}"
        else:
            out[name] = "builtin" if name.startswith(BUILTIN_PREFIX) else "local"
    return out


def call_each(pm: pluggy.PluginManager, hook: str, owner: Registry | None = None, **kwargs: object) -> list[object]:
    """Call every implementation of ``hook`` on its own (in registration order) so that an
    exception is reported with the plugin's name; returns the non-None results."""
    results: list[object] = []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if owner is not None:
            owner.current_plugin = impl.plugin_name
        try:
            result = impl.function(**{name: kwargs[name] for name in impl.argnames})
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}; "
                f"disable it with DOCKLESS_DISABLE_PLUGINS={impl.plugin_name}"
            ) from exc
        if result is not None:
            results.append(result)
    if owner is not None:
        owner.current_plugin = "<unknown>"
    return results


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call ``dockless_register_components`` on every plugin and return the filled registry."""
    registry = Registry()
    call_each(pm, "dockless_register_components", registry, registry=registry)
    return registry
