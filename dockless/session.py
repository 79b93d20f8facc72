"""One run of dockless against one host: probes, plans and applies steps, keeps the manifest.

A task body calls :func:`run_step`; the session is shared by every task of one ``invoke`` call
(invoke hands all of them the same config object), so probes run once and the summary is whole.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from invoke import Context, Exit

from dockless import killpoint, powershell
from dockless.actions import Action, Install, Refusal, StepFailed, Warn, WriteFile
from dockless.files import as_utf8, atomic_write, backup_name, bad_encoding, read_bytes, sha256_bytes, unified_diff
from dockless.layout import Layout, layout_for, local_path
from dockless.manifest import Manifest
from dockless.model import Component, Step, config_key
from dockless.registry import PluginError, Registry
from dockless.settings import Settings, SettingsError
from dockless.versions import VersionError


class InstallConflict(Refusal):
    """An install would overwrite a file that is not dockless's (refused before anything is done)."""


def _console() -> Any:
    from rich.console import Console  # imported on use: keeps `invoke --list` fast

    return Console(stderr=True, highlight=False, soft_wrap=True)


DEFAULT_WINDOWS_HOST = {"windows_build": 20348, "windows_ubr": 0, "edition": "server"}


@dataclass
class StepResult:
    step: str
    status: str  # ok | changed | failed | skipped | warning | planned
    seconds: float
    detail: str = ""


@dataclass
class PlanEntry:
    task: str
    changes: list[str]
    files: list[dict[str, str]]
    commands: list[str]
    actions: list[Action] = field(default_factory=list, repr=False)
    blocked: str = ""  # why setup would stop at this step (e.g. a kept config of the wrong schema)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"task": self.task, "changes": self.changes, "files": self.files, "commands": self.commands}
        if self.blocked:
            data["blocked"] = self.blocked
        return data


@dataclass
class Session:
    c: Context
    settings: Settings
    registry: Registry
    dry: bool = False
    console: Any = field(default_factory=lambda: _console())
    timings: bool = False  # `setup --timings`: print each step's seconds
    current_step: str | None = None  # the step running now (the manifest notes which step wrote a file)

    def __post_init__(self) -> None:
        self.layout: Layout = layout_for(self.settings)
        self.components: list[Component] = self.registry.select(self.settings.target, {"cni": self.settings.cni})
        self.steps: dict[str, tuple[Component, Step]] = {
            f"{Registry.collection_name(c)}.{s.name}": (c, s) for c, s in Registry.steps(self.components, self.settings.target)
        }
        self.manifest = Manifest.load(self.local(self.layout.dockless_dir / "manifest.json"), dry=self.dry)
        self.changed: set[str] = set()
        self.results: list[StepResult] = []
        self.assumptions: list[str] = []
        self.warnings: list[str] = []
        self._probes: dict[str, Any] | None = None
        self._lock: Any = None
        self._configs = {c.key: self._component_config(c) for c in self.components}
        self._cache: Any = None
        self.flags: dict[str, Any] = {}

    # -- settings ----------------------------------------------------------------------------
    def _component_config(self, comp: Component) -> dict[str, Any]:
        """``comp``'s merged settings. With the first active component, the whole dockless.toml
        is checked against the installed components: unknown tables and keys, and the tables
        of components that are not active on this target (one file serves both targets)."""
        from dockless.settings import check_tables, component_config

        where = self.settings.config_name if self.settings.config_file else ""
        if comp is self.components[0]:
            check_tables(self.settings, self.registry.components.values())
            for other in self.registry.components.values():
                component_config(other, self.settings.section(other.key), where)
        return component_config(comp, self.settings.section(comp.key), where)

    def config(self, component: str) -> dict[str, Any]:
        """The merged settings of a component (``cni-nat`` and ``cni_nat`` both work)."""
        return self._configs[config_key(component)]

    def active(self, name: str) -> bool:
        return config_key(name) in self._configs

    def local(self, path: PurePath) -> Path:
        return local_path(self.settings, path)

    # -- host facts and probes ------------------------------------------------------------------
    @property
    def probes_available(self) -> bool:
        return self.settings.target == "windows" and self.settings.native

    def probe(self, key: str) -> Any:
        """The JSON value of a step's probe (batched: one PowerShell process for all of them);
        ``None`` when the target cannot be probed from here (a Windows plan on Linux)."""
        if not self.probes_available:
            return None
        if self._probes is None:
            self._probes = self._run_probes()
        return self._probes.get(key)

    def _run_probes(self) -> dict[str, Any]:
        from plugins.preflight import HOST_PROBE

        probes = {"host": HOST_PROBE}
        probes.update({sid: s.probe for sid, (_c, s) in self.steps.items() if s.probe})
        result = self.c.run(powershell.command(powershell.probe_script(probes)), hide=True, warn=True)
        if result is None or not result.ok:
            err = powershell.error_message(getattr(result, "stderr", ""), getattr(result, "stdout", ""))
            raise Exit(f"probing the Windows host failed: {err}; run from an elevated PowerShell", 1)
        try:
            return powershell.parse_probe_output(result.stdout)
        except ValueError as exc:
            raise Exit(f"probing the Windows host returned unreadable output ({exc})", 1) from None

    def host(self, name: str) -> Any:
        """A Windows host fact (``windows_build``, ``windows_ubr``, ``edition``, ``user_profile``):
        probed when possible, else from ``[host]`` in dockless.toml, else an assumption."""
        probed = self.probe("host")
        if isinstance(probed, dict) and name in probed and "error" not in probed:
            return probed[name]
        if name in self.settings.assumed_host:
            value = self.settings.assumed_host[name]
            source = "[host] in dockless.toml"
        else:
            value = DEFAULT_WINDOWS_HOST.get(name)
            source = "default"
        note = f"{name} = {value!r} ({source}; not probed)"
        if note not in self.assumptions:
            self.assumptions.append(note)
        return value

    # -- artifacts -----------------------------------------------------------------------------
    def url(self, upstream: str) -> str:
        mirror = self.settings.mirror
        if mirror and upstream.startswith("https://github.com/"):
            base = mirror.rstrip("/")
            return base + upstream[len("https://github.com"):]
        return upstream

    def artifact(self, key: str, version: str, urls: list[str], checksum_urls: list[str | None],
                 sha_key: str | None = None) -> Any:
        """An :class:`~dockless.download.Artifact` with the mirror applied and the sha256 pinned in
        versions.toml (``[sha256]``, keyed by asset file name, or ``sha_key``) when there is one."""
        from dockless.artifact import Artifact

        name = urls[0].rsplit("/", 1)[-1]
        keys = [sha_key] if sha_key else [u.rsplit("/", 1)[-1] for u in urls]
        pinned = next((self.settings.pins.sha256[k] for k in keys if k in self.settings.pins.sha256), None)
        return Artifact(
            key=key,
            version=version,
            urls=tuple(self.url(u) for u in urls),
            checksum_urls=tuple(self.url(u) if u else None for u in checksum_urls),
            sha256=pinned,
            allow_unverified=name in self.settings.section("unverified").get("allow", []),
            pin_key=sha_key,
        )

    @property
    def cache(self) -> Any:
        if self._cache is None:
            from dockless.download import Cache

            self._cache = Cache()
        return self._cache

    # -- file checks ------------------------------------------------------------------------------
    def desired_file(self, path: PurePath, content: bytes, mode: int | None = None) -> list[Action]:
        """Actions that make ``path`` hold ``content``; respects files the user wrote (drift)."""
        local = self.local(path)
        current = read_bytes(local) if self.settings.native else None
        if current == content:
            return []
        if current is None:
            return [WriteFile(path, content, mode, "create")]
        state = self.manifest.file_state(str(path), local)
        diff = unified_diff(current, content, path.name)
        encoding = bad_encoding(current)
        if state == "edited" and encoding and self._reencoded(str(path), current):
            state = "ours"  # what dockless wrote, re-saved as UTF-16/with a BOM (Notepad, Set-Content)
        if state == "ours":
            why = f"re-encode {encoding} as UTF-8 without BOM" if encoding else "update"
            return [WriteFile(path, content, mode, why, diff)]
        whose = "exists and was not written by dockless" if state == "unknown" else "was changed outside dockless"
        if self.settings.force:
            what = "a file not written by dockless" if state == "unknown" else "a file changed outside dockless"
            return [WriteFile(path, content, mode, f"replace {what}; backup kept", diff, backup=True)]
        if encoding:
            raise StepFailed(
                f"{path} is {encoding}: containerd and CNI read only UTF-8 without BOM (containerd says "
                f"'bare keys cannot contain …'); re-run with --force to rewrite it (a backup is kept)"
            )
        return [Warn(f"{path} {whose}; keeping it (run with --force to replace it, a backup is kept):\n{diff}")]

    def _reencoded(self, target: str, current: bytes) -> bool:
        """True when ``current`` is the text dockless recorded for ``target``, in another
        encoding (field case C02: such a file is still ours and is rewritten as UTF-8)."""
        entry = self.manifest.files.get(target)
        text = as_utf8(current)
        if entry is None or text is None:
            return False
        return entry["sha256"] in (sha256_bytes(text), sha256_bytes(text.replace(b"\r\n", b"\n")))

    def installed(self, component: str, version: str, paths: list[PurePath]) -> bool:
        """True when the manifest says ``version`` is installed and every file is unchanged."""
        if not self.settings.native:
            return False
        if self.manifest.components.get(component, {}).get("version") != version:
            return False
        return all(self.manifest.file_state(str(p), self.local(p)) == "ours" for p in paths)

    # -- doing ---------------------------------------------------------------------------------
    def write_file(self, action: WriteFile, component: str) -> None:
        if self.dry:
            return
        local = self.local(action.path)
        if action.backup and local.exists():
            theirs = self.manifest.file_state(str(action.path), local) == "unknown"
            backup = backup_name(local)
            if theirs:  # the user's own file (not an edit of dockless's): teardown puts it back
                self.manifest.add_backup(str(action.path), str(action.path.with_name(backup.name)), component)
            shutil.copy2(local, backup)
            then = " (teardown puts it back)" if theirs else ""
            self.console.print(f"  backup of {action.path} kept at {backup}{then}", markup=False)
        self.record_new_dirs(action.path.parent)
        atomic_write(local, action.content, action.mode)
        self.manifest.record_file(str(action.path), local, component, "rendered", step=self.current_step)

    def record_new_dirs(self, path: PurePath) -> None:
        """Note in the manifest the folders of ``path`` (a target folder) that do not exist yet:
        dockless is about to create them, and teardown removes them again when empty."""
        if self.dry:
            return
        missing = []
        while path != path.parent and not self.local(path).exists():
            missing.append(str(path))
            path = path.parent
        if missing:
            self.manifest.add_dirs(missing)

    def remove_file(self, path: PurePath) -> None:
        if self.dry:
            return
        self.local(path).unlink(missing_ok=True)
        self.manifest.forget_file(str(path))

    def install_conflicts(self, action: Install) -> list[tuple[PurePath, str]]:
        """The files at ``action``'s destinations that dockless did not install (``unknown``) or
        that changed since it did (``edited``); files of an install a killed run left half done
        (``pending`` in the manifest) are dockless's own."""
        if not self.settings.native:
            return []
        found = []
        for target in action.targets() or []:
            if str(target) in self.manifest.pending:
                continue
            state = self.manifest.file_state(str(target), self.local(target))
            if state in ("unknown", "edited"):
                found.append((target, state))
        return found

    def check_install(self, action: Install) -> None:
        """Refuse (without --force) to install over a file that is not dockless's; with --force
        note it on the action, whose run moves it aside (see :meth:`install`)."""
        conflicts = self.install_conflicts(action)
        if not conflicts:
            return
        if self.settings.force:
            action.replaces = tuple(str(t) for t, _s in conflicts)
            return
        target, state = conflicts[0]
        others = [str(t) for t, _s in conflicts[1:]]
        more = f" (and {len(others)} more: {', '.join(others)})" if others else ""
        why = "exists and was not installed by dockless" if state == "unknown" else "was changed since dockless installed it"
        raise InstallConflict(f"{target} {why}{more}; move it away, or re-run with --force to replace it "
                              f"(it is kept as {target.name}.<timestamp>.bak and teardown puts it back)")

    def install(self, action: Install, component: str) -> None:
        from dockless.archive import ArchiveError, DigestMismatch, extract, raw_install
        from dockless.download import fetch

        if self.dry:
            return
        blob = fetch(action.artifact, self.cache)
        dest = self.local(action.dest)
        conflicts = self.install_conflicts(action)
        if conflicts and not self.settings.force:  # planned before: a file appeared since
            raise InstallConflict(f"{conflicts[0][0]} is not dockless's; re-run with --force to replace it (a backup is kept)")
        for target, _state in conflicts:  # the user's file: moved aside, recorded, put back by teardown
            local = self.local(target)
            backup = backup_name(local)
            self.manifest.add_backup(str(target), str(target.with_name(backup.name)), component)
            os.replace(local, backup)
            self.manifest.forget_file(str(target))
            self.console.print(f"  moved {target} (not dockless's) to {backup}; teardown puts it back", markup=False)
        targets = [str(t) for t in action.targets() or []]
        self.manifest.set_pending(targets, component)  # a kill from here on leaves files that are ours
        for member in (action.rename,) if action.rename else (action.members or ("",)):
            self.record_new_dirs(action.dest if action.flatten or not member else (action.dest / member).parent)
        digests: dict[Path, str] = {}  # each file's sha256, taken while it was written (not read again)
        sha256 = self.cache.digest(blob)  # what the blob was verified as: checked again on the bytes unpacked
        try:
            if action.rename:
                written = [dest / action.rename]
                raw_install(blob, written[0], sha256=sha256, digests=digests)
            else:
                written = extract(blob, dest, action.members, flatten=action.flatten, sha256=sha256, digests=digests)
        except DigestMismatch as exc:  # the cached copy changed since it was verified: download it again next run
            blob.unlink(missing_ok=True)
            raise ArchiveError(f"{exc}; the cached copy was removed, run again to download it") from None
        for path in written:
            target = action.dest / path.relative_to(dest).as_posix()
            self.manifest.files.pop(str(target), None)
            self.manifest.record_file(str(target), path, component, "installed", sha256=digests.get(path),
                                      step=self.current_step)
        self.manifest.clear_pending(targets)
        self.manifest.set_component(component, version=action.artifact.version)

    def run_command(self, line: str, why: str, env: dict[str, str] | None = None) -> Any:
        if self.dry:
            self.console.print(f"  [dry] {line if len(line) < 200 else line[:200] + '…'}")
            return None
        result = self.c.run(line, hide=True, warn=True, env=env or {})
        if result is not None and not result.ok:
            if powershell.decode(line) is not None:  # the error record's message, not its last line
                detail = powershell.error_message(result.stderr, result.stdout)
            else:
                lines = (result.stderr or result.stdout or "").strip().splitlines()
                detail = lines[-1] if lines else "no output"
            raise StepFailed(f"{why} failed (exit {result.exited}): {detail}")
        return result

    def warn(self, message: str) -> None:
        from rich.markup import escape  # a drift diff has TOML [tables]: not markup

        self.warnings.append(message)
        self.console.print(f"  [yellow]warning[/]: {escape(message)}")

    # -- steps -----------------------------------------------------------------------------------
    def lookup(self, step_id: str) -> tuple[Component, Step]:
        try:
            return self.steps[step_id]
        except KeyError:
            raise Exit(f"{step_id} is not part of the {self.settings.target} graph (active: {', '.join(self.steps)})", 1) from None

    def plan_step(self, step_id: str) -> list[Action]:
        comp, step = self.lookup(step_id)
        try:
            actions = list(step.plan(self))
        except VersionError as exc:  # a missing or unusable pin: one line naming the key
            raise StepFailed(str(exc)) from None
        for action in actions:  # every install plan: a file that is not dockless's is not overwritten silently
            if isinstance(action, Install):
                self.check_install(action)

        if any(not isinstance(a, Warn) for a in actions):
            self.changed.add(step_id)
        return actions

    def plan(self) -> list[PlanEntry]:
        entries = []
        for step_id in self.steps:
            try:
                actions = self.plan_step(step_id)
            except StepFailed as exc:  # keep planning: show every blocker at once, like terraform
                entries.append(PlanEntry(step_id, [], [], [], blocked=str(exc)))
                continue
            entries.append(PlanEntry(
                task=step_id,
                changes=[a.describe() for a in actions],
                files=[f for a in actions for f in a.files()],
                commands=[cmd for a in actions for cmd in a.commands()],
                actions=actions,
                blocked=next((a.unverifiable for a in actions if isinstance(a, Install) and a.unverifiable), ""),
            ))
        return entries

    def run_step(self, step_id: str) -> StepResult:
        self._acquire_lock()
        comp, _step = self.lookup(step_id)
        killpoint.at(f"{step_id}:before")  # test hook (convergence tests); a no-op otherwise
        start = time.perf_counter()
        self.current_step = step_id
        try:
            actions = self.plan_step(step_id)
            for action in actions:  # refuse before anything of this step is done
                if isinstance(action, Install) and action.unverifiable:
                    raise StepFailed(action.unverifiable)
            for action in actions:
                if not isinstance(action, Warn):
                    self.console.print(f"  {step_id}: {action.describe()}")
                action.run(self, comp.name)
        except StepFailed as exc:
            self._finish(step_id, "failed", start, str(exc))
            raise Exit(f"{step_id} failed: {exc}", 1) from None
        except (PluginError, SettingsError) as exc:
            self._finish(step_id, "failed", start, str(exc))
            raise Exit(f"{step_id}: {exc}", 1) from None
        except PermissionError as exc:
            self._finish(step_id, "failed", start, str(exc))
            raise Exit(f"{step_id} failed: {exc}; run as root/administrator, or set DOCKLESS_ROOT to a folder you own", 1) from None
        except Exception as exc:  # downloads, archives, OS errors: one line, no traceback
            from dockless.archive import ArchiveError
            from dockless.download import DownloadError

            if not isinstance(exc, (DownloadError, ArchiveError, OSError)):
                raise
            self._finish(step_id, "failed", start, str(exc))
            raise Exit(f"{step_id} failed: {exc}", 1) from None
        status = "changed" if step_id in self.changed else ("warning" if actions else "ok")
        result = self._finish(step_id, status, start)
        killpoint.at(f"{step_id}:after")
        return result

    def _finish(self, step_id: str, status: str, start: float, detail: str = "") -> StepResult:
        result = StepResult(step_id, status, time.perf_counter() - start, detail)
        self.results.append(result)
        colour = {"ok": "green", "changed": "cyan", "failed": "red", "warning": "yellow"}.get(status, "white")
        self.console.print(f"[{colour}]{status:>8}[/] {step_id}" + (f" ({result.seconds:.2f}s)" if self.timings else ""))
        return result

    def _acquire_lock(self) -> None:
        if self._lock is not None or self.dry:
            return
        from filelock import FileLock, Timeout

        lock_path = self.local(self.layout.dockless_dir / "dockless.lock")
        self.record_new_dirs(self.layout.dockless_dir)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(lock_path))
        try:
            self._lock.acquire(timeout=0.5)
        except Timeout:
            self._lock = None
            raise Exit(f"another dockless run holds {lock_path}; wait for it to finish", 1) from None

    def run_all(self, *, enable_features: bool = False) -> list[StepResult]:
        """What ``setup`` does: download everything first (in parallel), then every step of
        the graph in order; the lock is released at the end, whatever happens."""
        self.flags["enable_features"] = enable_features
        try:
            self.prefetch()
            for step_id in self.steps:
                self.run_step(step_id)
        finally:
            self.release()
        return self.results

    def prefetch(self) -> None:
        """Download every artifact the plan needs, in parallel, into the cache (a warm cache
        makes this a no-op). The steps then install from the cache."""
        planned = []
        for sid in self.steps:
            try:
                planned += [a for a in self._quiet_plan(sid) if isinstance(a, Install)]
            except Refusal as exc:  # refused before anything is downloaded or changed
                raise Exit(f"{sid} failed: {exc}", 1) from None
        self.changed.clear()
        if planned and not self.dry:
            from dockless.download import fetch_all  # imported only when something is fetched

            try:
                fetch_all([a.artifact for a in planned], self.cache)
            except Exception as exc:  # DownloadError and friends: one line, nothing installed
                raise Exit(f"download failed: {exc}", 1) from None

    def _quiet_plan(self, step_id: str) -> list[Action]:
        try:
            return self.plan_step(step_id)
        except Refusal:
            raise
        except StepFailed:
            return []  # reported when the step itself runs

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
