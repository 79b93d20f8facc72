"""The manifest: everything dockless installed or changed, written atomically as steps complete.

``teardown`` reverses exactly what is recorded here; ``setup`` uses the file hashes to tell a
file dockless wrote (safe to update) from one the user edited (drift: kept unless ``--force``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockless.files import atomic_write, sha256_file

FORMAT = 1


@dataclass
class Manifest:
    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[dict[str, str]] = field(default_factory=list)
    dry: bool = False
    dirs: list[str] = field(default_factory=list)  # folders dockless created (teardown removes them when empty)
    # the user's files dockless moved aside (setup --force) to put its own there: target -> {backup, component};
    # teardown puts them back
    backups: dict[str, dict[str, str]] = field(default_factory=dict)
    # files an install is writing right now (target -> component): recorded before the first byte, so a
    # run killed mid-install knows them for its own when it runs again
    pending: dict[str, str] = field(default_factory=dict)
    # what teardown without --purge left for `teardown --purge` (containerd's data and log)
    purge: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, dry: bool = False) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, dry=dry)
        except (ValueError, UnicodeDecodeError):
            # a torn or hand-edited manifest: keep it for the user, start a new one
            os.replace(path, path.with_suffix(".json.corrupt"))
            return cls(path, dry=dry)
        return cls(path, data.get("files", {}), data.get("components", {}), data.get("records", []), dry,
                   data.get("dirs", []), data.get("backups", {}), data.get("pending", {}), data.get("purge", []))

    def save(self) -> None:
        if self.dry:
            return
        data = {"format": FORMAT, "files": self.files, "components": self.components, "records": self.records,
                "dirs": self.dirs, "backups": self.backups, "pending": self.pending, "purge": self.purge}
        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode() + b"\n")

    @property
    def empty(self) -> bool:
        """Nothing recorded that teardown still has to undo, restore or purge."""
        return not (self.files or self.components or self.records or self.backups or self.pending or self.purge)

    # -- files -------------------------------------------------------------------------------
    def record_file(self, target: str, local: Path, component: str, kind: str, sha256: str | None = None,
                    step: str | None = None) -> None:
        st = local.stat()
        self.files[target] = {
            "sha256": sha256 or sha256_file(local),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "component": component,
            "kind": kind,
        }
        if step:  # the step that wrote it: teardown removes it under that step
            self.files[target]["step"] = step
        self.save()

    def file_state(self, target: str, local: Path) -> str:
        """``missing`` (not on disk), ``unknown`` (not ours), ``ours`` (unchanged), ``edited``."""
        entry = self.files.get(target)
        try:
            st = local.stat()
        except FileNotFoundError:
            return "missing"
        if entry is None:
            return "unknown"
        if st.st_size == entry["size"] and st.st_mtime_ns == entry["mtime_ns"]:
            return "ours"
        return "ours" if sha256_file(local) == entry["sha256"] else "edited"

    def forget_file(self, target: str) -> None:
        if self.files.pop(target, None) is not None:
            self.save()

    # -- the user's files moved aside, installs in progress ------------------------------------
    def add_backup(self, target: str, backup: str, component: str) -> None:
        self.backups[target] = {"backup": backup, "component": component}
        self.save()

    def forget_backup(self, target: str) -> None:
        if self.backups.pop(target, None) is not None:
            self.save()

    def set_pending(self, targets: list[str], component: str) -> None:
        self.pending.update({t: component for t in targets})
        self.save()

    def clear_pending(self, targets: list[str]) -> None:
        popped = [t for t in targets if self.pending.pop(t, None) is not None]
        if popped:
            self.save()

    # -- components and host records -----------------------------------------------------------
    def set_component(self, name: str, **values: Any) -> None:
        self.components.setdefault(name, {}).update(values)
        self.save()

    def add_record(self, kind: str, value: str, component: str) -> None:
        rec = {"kind": kind, "value": value, "component": component}
        if rec not in self.records:
            self.records.append(rec)
            self.save()

    def remove_record(self, kind: str, value: str) -> None:
        self.records = [r for r in self.records if not (r["kind"] == kind and r["value"] == value)]
        self.save()

    def add_dirs(self, dirs: list[str]) -> None:
        new = [d for d in dirs if d not in self.dirs]
        if new:
            self.dirs = sorted(set(self.dirs) | set(new))
            self.save()

    def has_record(self, kind: str, value: str) -> bool:
        return any(r["kind"] == kind and r["value"] == value for r in self.records)
