"""``teardown``: reverse what the manifest records, in reverse step order, and nothing else."""
from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from dockless.actions import StepFailed, Warn
from dockless.files import backup_name
from dockless.hoststate import target_path
from dockless.session import Session


@dataclass
class TeardownReport:
    removed: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)  # "path -> backup" (printed as it happens)
    restored: list[str] = field(default_factory=list)  # the user's files put back from their backup
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def data_dirs(session: Session) -> list[PurePath]:
    """containerd's root and state dirs, and whatever an earlier teardown (without --purge)
    recorded as still to purge."""
    found = [session.layout.containerd_root, session.layout.containerd_state]
    for text in session.manifest.purge:
        path = target_path(session, text)
        if path not in found and path != session.layout.log_file:
            found.append(path)
    return found


def teardown(session: Session, *, purge: bool = False, force: bool = False) -> TeardownReport:
    """Reverse what the manifest records, in reverse step order: each step's ``undo`` (stop the
    service, remove the exclusion/network), then the component's files (edited ones are moved
    aside as ``<name>.<timestamp>.bak`` unless ``force``), then (``purge``) containerd's data,
    the dirs dockless created when empty, and last the manifest. Nothing else is touched."""
    report = TeardownReport()
    manifest = session.manifest
    session._acquire_lock()
    try:
        order = list(session.steps)
        first_of: dict[str, str] = {}
        for sid in order:
            first_of.setdefault(session.steps[sid][0].name, sid)
        undo_failed: set[str] = set()
        for sid in reversed(order):
            comp, step = session.steps[sid]
            start = time.perf_counter()
            changed = False
            try:
                actions = list(step.undo(session)) if step.undo else []
                for action in actions:
                    if not isinstance(action, Warn):
                        session.console.print(f"  {sid}: undo: {action.describe()}", markup=False)
                    action.run(session, comp.name)
                    changed = changed or not isinstance(action, Warn)
                last = first_of[comp.name] == sid  # the component's first step: undone last
                if last and comp.name in undo_failed:
                    report.kept.append(f"the files of {comp.name}: an undo of it failed (a running service may use them)")
                elif comp.name not in undo_failed:
                    # each file under the step that wrote it; the component's first step takes the rest
                    # (files recorded before the manifest named steps)
                    here = _written_by(session, sid, last)
                    count = sum(e["component"] == comp.name and here(e) for e in manifest.files.values())
                    if count:
                        session.console.print(f"  {sid}: remove the {count} file(s) dockless wrote for {comp.name}", markup=False)
                    changed = _remove_component(session, comp.name, force, report, here) or changed
                    if last and not session.dry:
                        changed = _finish_component(session, comp.name, report) or changed
                        for rec in [r for r in manifest.records if r["component"] == comp.name]:
                            manifest.remove_record(rec["kind"], rec["value"])
            except (StepFailed, OSError) as exc:
                session._finish(sid, "failed", start, str(exc))
                report.failed.append(f"{sid}: {exc}")
                undo_failed.add(comp.name)
                continue
            session._finish(sid, "changed" if changed else "ok", start)
        active = {c.name for c in session.components}
        leftover = {e["component"] for e in manifest.files.values()} | set(manifest.pending.values()) \
            | {b["component"] for b in manifest.backups.values()}
        for other in sorted(leftover - active):  # files of a component no longer in the graph
            _remove_component(session, other, force, report)
            if not session.dry:
                _finish_component(session, other, report)
        for rec in manifest.records:
            report.kept.append(f"{rec['kind']} {rec['value']} of {rec['component']}: that component is not active, "
                               f"so its undo cannot run (enable it and run teardown again)")
            report.failed.append(f"{rec['kind']} {rec['value']} left in place")
        if purge:
            _purge(session, report)
        if not report.failed and not session.dry:
            _finish_teardown(session, report)
    finally:
        session.release()
    if not report.failed and not session.dry:  # the folders stay recorded while the manifest is kept
        lock = session.local(session.layout.dockless_dir / "dockless.lock")
        lock.unlink(missing_ok=True)
        _remove_empty_dirs(session, report)
    return report


def _written_by(session: Session, sid: str, last: bool) -> Callable[[dict[str, Any]], bool]:
    """Selects the manifest entries step ``sid`` removes: those it wrote and, for the component's
    first step (undone last), those of no known step."""
    return lambda entry: entry.get("step") == sid or (last and entry.get("step") not in session.steps)


def _remove_component(session: Session, component: str, force: bool, report: TeardownReport,
                      here: Callable[[dict[str, Any]], bool] = lambda _e: True) -> bool:
    """Remove the files dockless recorded for ``component`` (those ``here`` selects); an edited
    one is moved aside unless ``force``; a file of the user's that dockless moved aside is put back."""
    changed = False
    for path, entry in sorted(session.manifest.files.items(), reverse=True):
        if entry["component"] != component or not here(entry):
            continue
        target = target_path(session, path)
        local = session.local(target)
        state = session.manifest.file_state(path, local)
        changed = True
        if session.dry:
            session.console.print(f"  (dry) remove {path}", markup=False)
            continue
        if state == "edited" and not force:
            backup = backup_name(local)
            os.replace(local, backup)
            report.backups.append(f"{path} -> {backup}")
            session.console.print(f"  kept your changes to {path}: moved to {backup} (teardown --force deletes it)", markup=False)
        elif state != "missing":
            local.unlink()
            report.removed.append(path)
        session.manifest.forget_file(path)
        _restore(session, path, report)
    return changed


def _finish_component(session: Session, component: str, report: TeardownReport) -> bool:
    """After the component's files: the files of an install a killed run left half done (the
    manifest noted them before writing), the user's files still moved aside, its version."""
    changed = False
    manifest = session.manifest
    for path in sorted(p for p, comp in manifest.pending.items() if comp == component):
        local = session.local(target_path(session, path))
        if local.is_file() or local.is_symlink():
            local.unlink()
            report.removed.append(path)
            changed = True
        manifest.clear_pending([path])
    for path in sorted(p for p, b in manifest.backups.items() if b["component"] == component):
        changed = _restore(session, path, report) or changed
    if component in manifest.components:
        manifest.components.pop(component)
        manifest.save()
    return changed


def _restore(session: Session, path: str, report: TeardownReport) -> bool:
    """Put back the user's file dockless moved aside to put its own at ``path``."""
    entry = session.manifest.backups.get(path)
    if entry is None or session.dry:
        return False
    local = session.local(target_path(session, path))
    backup = session.local(target_path(session, entry["backup"]))
    if not backup.exists():
        report.kept.append(f"{path}: its backup {entry['backup']} is gone, nothing to put back")
    elif local.exists() or local.is_symlink():
        report.kept.append(f"{entry['backup']}: not put back, {path} exists again")
    else:
        os.replace(backup, local)
        report.restored.append(path)
        session.console.print(f"  put back your {path} (from {entry['backup']})", markup=False)
    session.manifest.forget_backup(path)
    return True


def _mounts_under(folder: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    prefix = str(folder).rstrip("/") + "/"
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].encode().decode("unicode_escape")
            if point == str(folder) or point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _purge(session: Session, report: TeardownReport) -> None:
    import shutil

    for folder in data_dirs(session):
        local = session.local(folder)
        if not local.exists():
            continue
        if session.dry:
            session.console.print(f"  (dry) remove {folder} (containerd data)", markup=False)
            continue
        if session.settings.target == "linux" and session.settings.native:
            for point in _mounts_under(local):  # snapshots or sandboxes of containers still mounted
                result = session.c.run(f"umount {shlex.quote(point)}", hide=True, warn=True)
                if result is not None and not result.ok:
                    session.c.run(f"umount -l {shlex.quote(point)}", hide=True, warn=True)
        errors: list[str] = []
        shutil.rmtree(local, onerror=lambda _fn, p, exc: errors.append(f"{p}: {exc[1]}"))
        if errors:
            report.failed.append(f"could not remove all of {folder}: {errors[0]}")
        else:
            report.removed.append(str(folder))
            session.console.print(f"  removed containerd data {folder}", markup=False)
    log = session.local(session.layout.log_file)
    if log.exists() and not session.dry:
        log.unlink()
        report.removed.append(str(session.layout.log_file))


def left_to_purge(session: Session) -> list[str]:
    """containerd's data dirs and log that still exist (what ``teardown --purge`` removes)."""
    kept = [str(f) for f in data_dirs(session) if session.local(f).exists()]
    if session.local(session.layout.log_file).exists():
        kept.append(str(session.layout.log_file))
    return kept


def _finish_teardown(session: Session, report: TeardownReport) -> None:
    """The manifest goes only when nothing it records remains: containerd's data left without
    --purge stays recorded, so that a later ``teardown --purge`` still finds and removes it."""
    from plugins.containerd_service import pid_file

    pid = pid_file(session)
    if pid.exists():
        pid.unlink()
    manifest = session.manifest
    manifest.purge = left_to_purge(session)
    if manifest.purge:
        report.kept.append(f"containerd data and log: {', '.join(manifest.purge)} (teardown --purge removes them)")
    if manifest.empty:
        manifest.path.unlink(missing_ok=True)
        report.removed.append(str(manifest.path))
    else:
        manifest.save()


def purge_done(session: Session) -> bool:
    return not any(session.local(f).exists() for f in data_dirs(session))


def _remove_empty_dirs(session: Session, report: TeardownReport) -> None:
    for folder in sorted(session.manifest.dirs, key=lambda d: len(target_path(session, d).parts), reverse=True):
        try:
            session.local(target_path(session, folder)).rmdir()
        except OSError:
            continue  # not empty (the user's files, containerd's data) or already gone


def print_teardown(report: TeardownReport, session: Session) -> None:
    from rich.markup import escape

    out = session.console  # backups and restored files were named as they happened
    for line in report.kept:
        out.print(f"kept: {line}", markup=False)
    for line in report.failed:
        out.print(f"[red]failed[/]: {escape(line)}")
    if report.failed:
        out.print("teardown incomplete: the manifest is kept; fix the above and run `invoke teardown` again")
    else:
        out.print(f"teardown done: {len(report.removed)} item(s) removed")
