"""Turn the registry into invoke's task tree: one collection per component (or role), ``pre=``
lists from the sorted ``requires`` graph, and the core tasks at the root."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from invoke import Collection, Context, Exit, Task

from dockless.manager import collect, plugin_manager
from dockless.registry import PluginError, Registry

if TYPE_CHECKING:
    from dockless.session import Session
from dockless.settings import Settings, SettingsError, load_settings

_SESSIONS: dict[int, tuple[Any, Session]] = {}
_LOADED: dict[str, Any] = {}


def load(settings: Settings | None = None, *, entry_points: bool = True, extra: tuple[object, ...] = ()) -> tuple[Settings, Registry, Any]:
    """Settings, registry and plugin manager for this process (what the namespace was built from)."""
    settings = settings or load_settings()
    pm = plugin_manager(entry_points=entry_points, disabled=settings.disabled_plugins, extra=extra)
    registry = collect(pm)
    _LOADED.update(settings=settings, registry=registry, pm=pm)
    return settings, registry, pm


def bind_session(c: Context, session: Session) -> Session:
    """Make ``session`` the one every task run with ``c``'s config uses (tests, core tasks)."""
    _SESSIONS[id(c.config)] = (c.config, session)
    return session


def session_for(c: Context, **flags: Any) -> Session:
    """The session shared by all tasks of this invoke call; created on first use."""
    entry = _SESSIONS.get(id(c.config))
    if entry is not None and entry[0] is c.config:
        session = entry[1]
        if flags.get("force"):
            session.settings.force = True
        return session
    if not _LOADED:
        load()
    settings: Settings = _LOADED["settings"]
    if os.environ.get("DOCKLESS_FORCE") == "1" or flags.get("force"):
        settings = settings.with_flags(force=True)
    try:
        from dockless.session import (
            Session,  # imported on first use: keeps `invoke --list` fast
        )

        session = Session(c, settings, _LOADED["registry"], dry=bool(c.config.run.dry))
    except (PluginError, SettingsError) as exc:
        raise Exit(str(exc), 2) from None
    return bind_session(c, session)


def run_step(c: Context, step_id: str) -> None:
    """The body of every step task: run one check → apply step in the shared session."""
    session_for(c).run_step(step_id)


def build_namespace(settings: Settings | None = None, *, entry_points: bool = True, extra: tuple[object, ...] = ()) -> Collection:
    """The whole task tree for ``settings.target`` (what ``invoke --list`` shows)."""
    from dockless import core_tasks, version_tasks

    settings, registry, _pm = load(settings, entry_points=entry_points, extra=extra)
    components = registry.select(settings.target, {"cni": settings.cni})
    ns = Collection()
    for task in core_tasks.TASKS + version_tasks.TASKS:
        ns.add_task(task)
    ns.add_collection(version_tasks.versions_collection())
    last_task: dict[str, Task] = {}
    role_of: dict[str, str] = {c.role: c.name for c in components if c.role}
    collections: dict[str, Collection] = {}
    for comp in components:
        coll = collections.setdefault(Registry.collection_name(comp), Collection(Registry.collection_name(comp)))
        pre = [last_task[role_of.get(r, r)] for r in comp.requires if role_of.get(r, r) in last_task]
        for step in comp.steps_for(settings.target):
            task = Task(step.task, name=step.name, pre=pre)
            coll.add_task(task)
            pre = [task]
            last_task[comp.name] = task
        for extra_task in comp.tasks:
            coll.add_task(extra_task if isinstance(extra_task, Task) else Task(extra_task))
    for name, tasks in registry.extra_tasks.items():
        coll = ns if not name else collections.setdefault(name, Collection(name))
        for _plugin, extra_task in tasks:
            coll.add_task(extra_task if isinstance(extra_task, Task) else Task(extra_task))
    for coll in collections.values():
        ns.add_collection(coll)
    return ns
