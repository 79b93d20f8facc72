"""``teardown``: reverse what the manifest records, in reverse step order, and nothing else."""
from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from dockless.actions import StepFailed, Warn
from dockless.files import backup_name
from dockless.hoststate import target_path
from dockless.session import Session


@dataclass
class TeardownReport:
    removed: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)  # "path -> backup"
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def data_dirs(session: Session) -> list[PurePath]:
    return [session.layout.containerd_root, session.layout.containerd_state]


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
                if first_of[comp.name] == sid and comp.name in undo_failed:
                    report.kept.append(f"the files of {comp.name}: an undo of it failed (a running service may use them)")
                elif first_of[comp.name] == sid:
                    count = sum(e["component"] == comp.name for e in manifest.files.values())
                    if count:
                        session.console.print(f"  {sid}: remove the {count} file(s) dockless wrote for {comp.name}", markup=False)
                    changed = _remove_component(session, comp.name, force, report) or changed
                    if not session.dry:
                        for rec in [r for r in manifest.records if r["component"] == comp.name]:
                            manifest.remove_record(rec["kind"], rec["value"])
            except (StepFailed, OSError) as exc:
                session._finish(sid, "failed", start, str(exc))
                report.failed.append(f"{sid}: {exc}")
                undo_failed.add(comp.name)
                continue
            session._finish(sid, "changed" if changed else "ok", start)
        active = {c.name for c in session.components}
        for other in sorted({e["component"] for e in manifest.files.values()} - active):
            _remove_component(session, other, force, report)  # files of a component no longer in the graph
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
    if not report.failed and not session.dry:
        lock = session.local(session.layout.dockless_dir / "dockless.lock")
        lock.unlink(missing_ok=True)
        _remove_empty_dirs(session, report)
    return report


def _remove_component(session: Session, component: str, force: bool, report: TeardownReport) -> bool:
    changed = False
    for path, entry in sorted(session.manifest.files.items(), reverse=True):
        if entry["component"] != component:
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
    if component in session.manifest.components and not session.dry:
        session.manifest.components.pop(component)
        session.manifest.save()
    return changed


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


def _finish_teardown(session: Session, report: TeardownReport) -> None:
    from plugins.containerd_service import pid_file

    pid = pid_file(session)
    if pid.exists():
        pid.unlink()
    session.manifest.path.unlink(missing_ok=True)
    report.removed.append(str(session.manifest.path))
    if not purge_done(session):
        kept = [str(f) for f in data_dirs(session) if session.local(f).exists()]
        if session.local(session.layout.log_file).exists():
            kept.append(str(session.layout.log_file))
        if kept:
            report.kept.append(f"containerd data and log: {', '.join(kept)} (teardown --purge removes them)")


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

    out = session.console
    for line in report.backups:
        out.print(f"backup: {line}", markup=False)
    for line in report.kept:
        out.print(f"kept: {line}", markup=False)
    for line in report.failed:
        out.print(f"[red]failed[/]: {escape(line)}")
    if report.failed:
        out.print("teardown incomplete: the manifest is kept; fix the above and run `invoke teardown` again")
    else:
        out.print(f"teardown done: {len(report.removed)} item(s) removed")
