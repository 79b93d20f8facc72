"""Tasks for downloads and pins: ``bundle`` (root), ``versions.check`` and ``versions.lock``."""
from __future__ import annotations

from pathlib import Path

from invoke import Collection, Context, Exit, task

from dockless.namespace import _LOADED, load
from dockless.registry import PluginError
from dockless.settings import SettingsError, versions_file
from dockless.taskargs import plain_values


def _loaded() -> tuple[object, object]:
    if not _LOADED:
        load()
    return _LOADED["settings"], _LOADED["registry"]


def _err(text: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=False)


@task(help={
    "directory": "folder to fill (github.com paths + manifest.json); use it as DOCKLESS_MIRROR",
    "target": "windows or linux (default: DOCKLESS_TARGET or this host)",
})
def bundle(c: Context, directory: str, target: str | None = None) -> None:
    """Download and verify every artifact a target installs into DIRECTORY, for offline setup."""
    plain_values("bundle", directory=(directory, "a directory"), target=(target, "a target (windows or linux)"))
    from dockless.bundle import BundleError, fresh_session, make_bundle
    from dockless.download import DownloadError

    settings, registry = _loaded()
    try:
        session = fresh_session(settings, registry, target or settings.target, c)  # type: ignore[arg-type]
        manifest = make_bundle(session, Path(directory), warn=lambda m: _err(f"warning: {m}"))
    except (BundleError, DownloadError, PluginError, SettingsError) as exc:
        raise Exit(f"bundle: {exc}", 1) from None
    total = sum(a["size"] for a in manifest["artifacts"])
    for a in manifest["artifacts"]:
        print(f"{a['path']}  {a['sha256'][:12]}…  {a['size']} bytes")
    print(f"{len(manifest['artifacts'])} artifacts ({total / 2**20:.1f} MiB) for {manifest['target']} in {directory}; "
          f"install offline with DOCKLESS_MIRROR={Path(directory).resolve()} invoke setup")


@task(name="check")
def check(c: Context) -> None:
    """Compare the pinned versions with the newest GitHub releases (GITHUB_TOKEN is used if set)."""
    from rich.console import Console
    from rich.table import Table

    from dockless.release_check import GitHub, GitHubError
    from dockless.release_check import check as check_pins

    settings, _registry = _loaded()
    try:
        rows = check_pins(settings.pins, GitHub())  # type: ignore[attr-defined]
    except GitHubError as exc:
        raise Exit(f"versions.check: {exc}", 1) from None
    table = Table(show_edge=False)
    for col in ("component", "pinned", "newest", "pinned line", "update"):
        table.add_column(col, no_wrap=col != "update")
    for r in rows:
        table.add_row(r.key, r.pinned, r.newest, r.line, f"[yellow]{r.status}[/]" if r.update else r.status)
    out = Console(highlight=False)
    out.print(table)
    updates = sum(r.update for r in rows)
    out.print(f"{updates} update(s) available" if updates else "every pin is current")


@task(name="lock", help={
    "dry": "show what would be written; change nothing",
    "force": "replace a pinned sha256 that differs from what the release publishes",
})
def lock(c: Context, dry: bool = False, force: bool = False) -> None:
    """Write the sha256 of every pinned artifact (both targets) into versions.toml's [sha256]."""
    from dockless.bundle import BundleError
    from dockless.download import DownloadError
    from dockless.versions_lock import compute, write

    settings, registry = _loaded()
    path = versions_file()
    try:
        locks = compute(settings, registry)  # type: ignore[arg-type]
        outcome = write(path, locks, dry=dry, force=force)
    except (BundleError, DownloadError, PluginError, SettingsError, ValueError) as exc:
        raise Exit(f"versions.lock: {exc}", 1) from None
    verb = "would write" if dry else "wrote"
    for item in outcome.added:
        print(f'{verb} "{item.name}" = "{item.sha256}"  (from {item.source})')
    for item, old in outcome.changed:
        print(f'{verb} "{item.name}" = "{item.sha256}"  (was {old}; from {item.source})')
    for item, old in outcome.kept:
        _err(f"kept {item.name} = {old}: the release publishes {item.sha256} ({item.source}); "
             "check why it changed, then run `invoke versions.lock --force` to take it")
    if not (outcome.added or outcome.changed):
        print(f"{path.name}: every pinned artifact is locked ({len(locks)} sha256)")
    elif outcome.written:
        print(f"{path}: {len(outcome.added) + len(outcome.changed)} sha256 written")
    if outcome.kept:
        raise Exit(code=1)


TASKS = [bundle]
"""Root tasks."""


def versions_collection() -> Collection:
    return Collection("versions", check, lock)
