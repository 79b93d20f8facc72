"""The root tasks: ``setup`` (the whole graph), ``plan`` (what setup would change) and ``plugins``."""
from __future__ import annotations

import json as _json
import sys
from typing import TYPE_CHECKING

from invoke import Context, Exit, task

from dockless.namespace import _LOADED, load, session_for
from dockless.registry import PluginError, Registry
from dockless.settings import SettingsError
from dockless.taskargs import plain_values

if TYPE_CHECKING:
    from dockless.session import Session


@task(help={
    "force": "replace files changed outside dockless (a timestamped backup is kept)",
    "timings": "print how long each step took",
    "enable-features": "Windows: enable the Containers (and Hyper-V) features if missing",
})
def setup(c: Context, force: bool = False, timings: bool = False, enable_features: bool = False) -> None:
    """Take this host to a working containerd: every step of every component, in order."""
    session = session_for(c, force=force)
    check_settings(session)
    session.timings = timings
    if session.settings.target != session.settings.host and session.settings.fs_root is None:
        raise Exit(f"target {session.settings.target} needs a {session.settings.target} host; "
                   f"on this {session.settings.host} machine use `invoke plan --target {session.settings.target}`", 2)
    session.run_all(enable_features=enable_features)
    summary(session)


def check_settings(session: Session) -> None:
    """Every plugin's ``dockless_check_settings`` on the merged settings; any problem stops the
    run before the host is touched, one line each."""
    from dockless.manager import check_settings as run_hook

    pm = _LOADED.get("pm")
    if pm is None:
        return
    merged = {comp.key: session.config(comp.name) for comp in session.components}
    try:
        problems = run_hook(pm, merged, session.settings.target)
    except PluginError as exc:
        raise Exit(str(exc), 2) from None
    if problems:
        raise Exit("\n".join(problems), 2)


def summary(session: Session) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dockless setup", show_edge=False)
    table.add_column("step")
    table.add_column("result")
    if session.timings:
        table.add_column("seconds", justify="right")
    for r in session.results:
        row = [r.step, r.status] + ([f"{r.seconds:.2f}"] if session.timings else [])
        table.add_row(*row)
    Console(stderr=True).print(table)
    changed = sum(r.status == "changed" for r in session.results)
    session.console.print("nothing to change" if not changed else f"{changed} step(s) changed")


@task(help={"target": "windows or linux (default: DOCKLESS_TARGET or this host)", "json": "print JSON"})
def plan(c: Context, target: str | None = None, json: bool = False) -> None:
    """Show what `setup` would change, step by step; nothing is touched."""
    plain_values("plan", target=(target, "a target (windows or linux)"))
    if not _LOADED:
        load()
    try:
        settings = _LOADED["settings"].with_flags(target=target)
        from dockless.session import Session  # imported on use: keeps `invoke --list` fast

        session = Session(c, settings, _LOADED["registry"], dry=True)
        check_settings(session)
        entries = session.plan()
    except (PluginError, SettingsError) as exc:
        raise Exit(str(exc), 2) from None
    blocked = [e for e in entries if e.blocked]
    if json:
        print(_json.dumps([e.as_json() for e in entries], indent=2))
        return
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    out.print(f"plan for {settings.target} (host: {settings.host}, service: {settings.service})")
    chosen = next((comp.name for comp in session.components if comp.role == "cni"), None)
    if settings.cni and chosen and chosen != settings.cni:  # one dockless.toml serves both targets
        platforms = ", ".join(_LOADED["registry"].components[settings.cni].platforms)
        out.print(f"  note: cni = {settings.cni} applies to {platforms}; using {chosen} on {settings.target}", markup=False)
    for note in session.assumptions:
        out.print(f"  assumed: {note}", markup=False)
    for entry in entries:
        if entry.blocked:
            out.print(f"[red]blocked[/] {entry.task}")
            out.print(f"    ! {entry.blocked}", markup=False)
            if not entry.changes:
                continue
        elif not entry.changes:
            out.print(f"[green]ok[/]      {entry.task}")
            continue
        else:
            out.print(f"[cyan]change[/]  {entry.task}")
        for action in entry.actions:
            out.print(f"    - {action.describe()}", markup=False)
            for cmd in action.commands():
                out.print("      " + cmd.strip().replace("\n", "\n      "), markup=False)
            for f in action.files():
                out.print("      " + f["content"].rstrip("\n").replace("\n", "\n      "), markup=False)
    todo = sum(bool(e.changes) for e in entries)
    out.print(f"{todo} of {len(entries)} steps would change" if todo else "nothing to change")
    if blocked:
        out.print(f"[red]{len(blocked)} step(s) blocked[/]: setup would stop at {blocked[0].task}")


@task(help={"settings": "also list every component's settings: default, choices, help"})
def plugins(c: Context, settings: bool = False) -> None:
    """List loaded plugins, their versions, components, roles, and what is blocked."""
    from dockless.manager import plugin_versions

    if not _LOADED:
        load()
    registry, pm, cfg = _LOADED["registry"], _LOADED["pm"], _LOADED["settings"]
    try:
        active = {comp.name for comp in registry.select(cfg.target, {"cni": cfg.cni})}
    except PluginError as exc:
        raise Exit(str(exc), 2) from None
    versions = plugin_versions(pm)
    rows = [("plugin", "version", "component", "role", "platforms", "state")]
    for name, comp in registry.components.items():
        owner = registry.owners[name]
        state = "active" if name in active else registry.inactive.get(name, "inactive")
        rows.append((owner, versions.get(owner, "?"), name, comp.role or "-", ",".join(comp.platforms), state))
    print(f"plugins for {cfg.target}" + (f" (cni = {cfg.cni})" if cfg.cni else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    quiet = sorted(set(versions) - set(registry.owners.values()))
    if quiet:
        print("plugins without components: " + ", ".join(f"{n} ({versions[n]})" for n in quiet))
    if cfg.disabled_plugins:
        print("disabled: " + ", ".join(cfg.disabled_plugins))
    if settings:
        print("\n".join(settings_lines(registry)))


def settings_lines(registry: Registry) -> list[str]:
    """Every declared setting: ``[section] key = default  (choices)`` and its help below."""
    lines = ["settings (dockless.toml tables; unknown keys are refused):"]
    for comp in registry.components.values():
        for key, setting in comp.settings.items():
            choices = f"  (one of: {', '.join(map(_json.dumps, setting.choices))})" if setting.choices else ""
            lines.append(f"  [{comp.key}] {key} = {_json.dumps(setting.default)}{choices}")
            lines.append(f"      {setting.help}")
    return lines


@task(help={"json": "print the report as JSON"})
def status(c: Context, json: bool = False) -> None:
    """Installed vs pinned versions, config drift, service and network state; exit 1 when something is wrong."""
    from dockless.hoststate import read_only, require_host
    from dockless.status import print_status, status as status_report

    session = session_for(c)
    require_host(session, "status")
    report = status_report(read_only(session))
    if json:
        print(_json.dumps(report, indent=2))
    else:
        print_status(report)
    if not report["ok"]:
        raise Exit(code=1)


@task(help={"fix": "apply the safe fixes (re-run the steps that repair what failed), then check again"})
def doctor(c: Context, fix: bool = False) -> None:
    """Check for the common failures, one line each with its fix; exit 1 while any remains."""
    from dockless.doctor import apply_fixes, checks, print_checks
    from dockless.hoststate import read_only, require_host

    session = session_for(c)
    require_host(session, "doctor")
    found = checks(read_only(session))
    print_checks(found)
    fixable = [ch for ch in found if ch.ok is False and ch.fixable]
    if fix and not fixable and any(ch.ok is False for ch in found):
        print("nothing here that doctor --fix can fix: see the fix named on each FAIL line")
    if fix and fixable:
        print("fixing:")
        for ch in fixable:
            print(f"  {ch.name}: {ch.fix}")
        for line in apply_fixes(session, found):
            print(f"  fix failed: {line}")
        print("after the fixes:")
        found = checks(read_only(session))
        print_checks(found)
    if any(ch.ok is False for ch in found):
        raise Exit(code=1)


@task(help={
    "purge": "also delete containerd's data (images, containers, snapshots: its root and state dirs) and its log",
    "yes": "do not ask before --purge deletes data",
    "force": "delete files changed since dockless wrote them instead of keeping them as .bak",
})
def teardown(c: Context, purge: bool = False, yes: bool = False, force: bool = False) -> None:
    """Undo what the manifest records, in reverse order: stop containerd, undo steps, remove dockless's files."""
    from dockless.hoststate import require_host
    from dockless.teardown import data_dirs, left_to_purge, print_teardown, teardown as run_teardown

    session = session_for(c)
    require_host(session, "teardown")
    if not session.manifest.path.exists():
        print(f"nothing to tear down: no manifest at {session.manifest.path}")
        return
    m = session.manifest
    left = left_to_purge(session) if m.purge else []
    if left and not purge and not (m.files or m.components or m.records or m.backups or m.pending):
        print(f"nothing to tear down but containerd's data and log: {', '.join(left)} "
              f"(`invoke teardown --purge --yes` removes them)")
        return
    if purge and not yes:
        dirs = " and ".join(str(d) for d in data_dirs(session))
        if not sys.stdin.isatty():
            raise Exit(f"teardown --purge deletes containerd's images and containers in {dirs}: add --yes to confirm", 1)
        if input(f"delete containerd's data in {dirs}? [y/N] ").strip().lower() not in ("y", "yes"):
            raise Exit("teardown cancelled; nothing was changed", 1)
    report = run_teardown(session, purge=purge, force=force)
    print_teardown(report, session)
    if report.failed:
        raise Exit(code=1)


TASKS = [setup, plan, plugins, status, doctor, teardown]
