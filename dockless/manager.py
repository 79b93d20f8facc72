"""A fresh plugin manager per call: built-ins from one source, then the ``dockless`` entry points.

Each hook implementation is called on its own, so a failing plugin is named in one clear error.
"""
from __future__ import annotations

import importlib.metadata
import os
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
    _check_disabled(disabled, extra)
    for name, module in builtin_plugins():
        if name not in disabled and name.removeprefix(BUILTIN_PREFIX) not in disabled:
            _register(pm, module, name)
    for plugin in extra:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if name not in disabled:
            _register(pm, plugin, name)
    versions: dict[str, str] = {}
    if entry_points:
        for ep in importlib.metadata.entry_points(group=PROJECT):
            if ep.name in disabled:
                continue
            dist = f"{ep.dist.name}=={ep.dist.version}" if ep.dist is not None else "unknown-distribution"
            if pm.has_plugin(ep.name):
                raise PluginError(
                    f"two plugins are named {ep.name!r}: {versions.get(ep.name, 'a built-in or test plugin')} and {dist}; "
                    f"uninstall one, or disable both with DOCKLESS_DISABLE_PLUGINS={ep.name}"
                )
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party package must not hide which one
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
                    f"disable it with DOCKLESS_DISABLE_PLUGINS={ep.name}"
                ) from exc
            _register(pm, plugin, ep.name)
            versions[ep.name] = dist
    pm.dockless_versions = versions  # type: ignore[attr-defined]  # read by plugin_versions()
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or "?"
        raise PluginError(f"plugin {name!r} implements a hook dockless does not have: {exc}; "
                          f"the hooks are listed in docs/plugins.md") from None
    return pm


def _check_disabled(disabled: set[str], extra: Iterable[object]) -> None:
    """A disabled name that no installed plugin has is a typo: say so, naming the installed ones."""
    builtins = [name for name, _module in builtin_plugins()]
    names = [n.removeprefix(BUILTIN_PREFIX) for n in builtins]
    names += [getattr(p, "__name__", None) or type(p).__name__ for p in extra]
    names += [ep.name for ep in importlib.metadata.entry_points(group=PROJECT)]
    missing = sorted(disabled - set(names) - set(builtins))
    if missing:
        source = "DOCKLESS_DISABLE_PLUGINS" if os.environ.get("DOCKLESS_DISABLE_PLUGINS", "").strip() else "disable_plugins"
        raise PluginError(f"{source} names {missing[0]!r}, which is not an installed plugin; "
                          f"installed plugins: {', '.join(dict.fromkeys(names))}")


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register one plugin; a bad hook implementation (wrong argument names …) names the plugin."""
    try:
        pm.register(plugin, name=name)
    except ValueError as exc:  # pluggy: the same name or object twice
        raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from None
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} has an invalid hook implementation: {exc}") from None


def plugin_versions(pm: pluggy.PluginManager) -> dict[str, str]:
    """Plugin name → ``distribution==version`` (``builtin`` for ours, ``local`` for ``extra=``)."""
    dists: dict[str, str] = getattr(pm, "dockless_versions", {})
    out: dict[str, str] = {}
    for name, _plugin in pm.list_name_plugin():
        out[name] = dists.get(name) or ("builtin" if name.startswith(BUILTIN_PREFIX) else "local")
    return out


def call_each(pm: pluggy.PluginManager, hook: str, owner: Registry | None = None, **kwargs: object) -> list[object]:
    """Call every implementation of ``hook`` on its own (in registration order) so that an
    exception is reported with the plugin's name; returns the non-None results."""
    results: list[object] = []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if owner is not None:
            owner.current_plugin = impl.plugin_name
        result = call_each_impl(impl, hook, **kwargs)
        if result is not None:
            results.append(result)
    if owner is not None:
        owner.current_plugin = "<unknown>"
    return results


def call_each_impl(impl: pluggy.HookImpl, hook: str, **kwargs: object) -> object:
    """Call one hook implementation; any exception becomes a :class:`PluginError` naming the
    plugin and the hook."""
    try:
        return impl.function(**{name: kwargs[name] for name in impl.argnames})
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}; "
            f"disable it with DOCKLESS_DISABLE_PLUGINS={impl.plugin_name}"
        ) from exc


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call ``dockless_register_components`` on every plugin and return the filled registry."""
    registry = Registry()
    call_each(pm, "dockless_register_components", registry, registry=registry)
    return registry


def check_settings(pm: pluggy.PluginManager, settings: dict[str, dict[str, object]], target: str) -> list[str]:
    """Call ``dockless_check_settings`` on every plugin; the problems, one line each, prefixed
    with the plugin's name. A result that is not a list of strings is the plugin's bug."""
    problems: list[str] = []
    for impl in pm.hook.dockless_check_settings.get_hookimpls():
        found = call_each_impl(impl, "dockless_check_settings", settings=settings, target=target)
        if found is None:
            continue
        if not isinstance(found, (list, tuple)) or not all(isinstance(p, str) for p in found):
            raise PluginError(f"plugin {impl.plugin_name!r} returned {found!r} from dockless_check_settings; "
                              f"it must return a list of one-line strings")
        problems += [f"{impl.plugin_name}: {p}" for p in found]
    return problems
