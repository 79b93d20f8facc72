"""Every hook dockless calls. Plugins implement them with ``@dockless.hookimpl``.

Hooks are called with keywords. Implementations take only the arguments they need and must not
give them defaults (pluggy never passes them).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dockless.markers import hookspec

if TYPE_CHECKING:
    from dockless.registry import Registry


@hookspec
def dockless_register_components(registry: Registry) -> None:
    """Hand components to the host.

    When: once per plugin-manager build, i.e. when ``tasks.py`` (or the ``dockless`` script)
    builds its namespace, and again for each fresh manager in tests.
    May touch: only ``registry`` — call ``registry.add(component)`` and
    ``registry.add_tasks(collection, *tasks)``; never import-time side effects, never the host.
    Result: none. Every implementation is called; order does not matter, because the host orders
    components from their ``requires``. A clash (same name twice, two providers of a role with
    no selection) is an error naming both plugins.
    """


@hookspec
def dockless_check_settings(settings: dict, target: str) -> list[str]:
    """Check settings that depend on each other before anything runs.

    When: at the start of ``plan`` and ``setup``, after the host built the session: every
    active component's ``[section]`` was merged with its declared
    :class:`~dockless.model.Setting` defaults, unknown keys and values outside ``choices`` were
    refused already.
    May touch: nothing; read ``settings`` (component config key → merged values, active
    components only) and ``target`` (``windows`` or ``linux``). No I/O, no host probes.
    Result: a list of problems, one line each, naming the setting and the fix (``[]`` or
    ``None``: all good). The lists of all plugins are concatenated, each line prefixed with the
    plugin's name; any problem stops the run (exit 2) before the host is changed.
    """
