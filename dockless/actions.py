"""What a step wants done. Steps return actions; ``plan`` prints them, ``setup`` runs them.

Everything that is a command goes through invoke's ``Context.run`` (so ``--dry`` and
``MockContext`` work); file writes and downloads are done in Python and honour dry-run too.
"""
from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from dockless import powershell

if TYPE_CHECKING:
    from dockless.artifact import Artifact
    from dockless.session import Session


class StepFailed(Exception):
    """An expected failure: one line naming what failed and what to do."""


class Refusal(StepFailed):
    """A step refuses because of what is on disk already (the user's files): ``setup`` plans
    every step first and stops with this before it changes anything."""


@dataclass
class Action:
    """Base: ``describe`` is the plan line, ``run`` does it."""

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def commands(self) -> list[str]:
        return []

    def files(self) -> list[dict[str, str]]:
        return []

    def run(self, session: Session, component: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass
class WriteFile(Action):
    path: PurePath
    content: bytes
    mode: int | None = None
    why: str = "create"
    diff: str = ""
    backup: bool = False

    def describe(self) -> str:
        return f"write {self.path} ({self.why})"

    def files(self) -> list[dict[str, str]]:
        return [{"path": str(self.path), "content": self.content.decode("utf-8", "replace")}]

    def run(self, session: Session, component: str) -> None:
        session.write_file(self, component)


@dataclass
class RemoveFile(Action):
    path: PurePath
    why: str = "remove"

    def describe(self) -> str:
        return f"remove {self.path} ({self.why})"

    def run(self, session: Session, component: str) -> None:
        session.remove_file(self.path)


@dataclass
class Install(Action):
    """Download (verified) and unpack ``members`` into ``dest`` (or copy a single-file asset)."""

    artifact: Artifact
    dest: PurePath
    members: tuple[str, ...] | None = None
    flatten: bool = False
    rename: str | None = None  # single-file assets (runc.amd64 → runc)
    replaces: tuple[str, ...] = ()  # files at its destinations that are not dockless's (moved aside with --force)

    def targets(self) -> list[PurePath] | None:
        """The files this install writes (target paths); None when it unpacks a whole archive
        (known only once it is downloaded)."""
        if self.rename:
            return [self.dest / self.rename]
        if self.members is None:
            return None
        if self.flatten:
            return [self.dest / m.rstrip("/").rsplit("/", 1)[-1] for m in self.members]
        return [self.dest.joinpath(*[p for p in m.split("/") if p not in ("", ".")]) for m in self.members]

    @property
    def unverifiable(self) -> str:
        """Why this download cannot be verified ("" when it can): no pin, no published
        checksum, and no explicit ``[unverified] allow`` for it."""
        art = self.artifact
        if art.sha256 or any(art.checksum_urls) or art.allow_unverified:
            return ""
        key = art.pin_key or art.filename
        return (f"{art.filename} ({art.key} {art.version}) publishes no checksum and versions.toml pins none: "
                f"run `invoke versions.lock` once where GitHub is reachable (it writes [sha256] \"{key}\"), "
                f"or accept it unverified with [unverified] allow = [\"{art.filename}\"] in dockless.toml")

    def describe(self) -> str:
        what = self.rename or (", ".join(self.members) if self.members else "all files")
        if self.artifact.sha256:
            check = f"sha256 {self.artifact.sha256[:12]}… pinned"
        elif any(self.artifact.checksum_urls):
            check = "sha256 from the release's checksum file"
        elif self.artifact.allow_unverified:
            check = "UNVERIFIED: no checksum, allowed by [unverified] in dockless.toml"
        else:
            check = "no sha256 pinned: run `invoke versions.lock` first"
        moved = f"; move aside {', '.join(self.replaces)} (not dockless's; kept as .bak, teardown puts it back)" \
            if self.replaces else ""
        return f"download {self.artifact.urls[0]} ({check}); install {what} into {self.dest}{moved}"

    def run(self, session: Session, component: str) -> None:
        session.install(self, component)


@dataclass
class Run(Action):
    """A plain process on the target (Linux lane), through ``Context.run``."""

    argv: Sequence[str]
    why: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        return shlex.join(self.argv)

    def describe(self) -> str:
        return f"run {self.line()}" + (f" ({self.why})" if self.why else "")

    def commands(self) -> list[str]:
        return [self.line()]

    def run(self, session: Session, component: str) -> None:
        session.run_command(self.line(), self.why or self.argv[0], env=self.env)


@dataclass
class PowerShell(Action):
    script: str
    why: str
    record: tuple[str, str] | None = None  # (kind, value) for the manifest, e.g. ("exclusion", path)

    def describe(self) -> str:
        return f"powershell: {self.why}"

    def commands(self) -> list[str]:
        return [self.script]

    def run(self, session: Session, component: str) -> None:
        session.run_command(powershell.command(self.script), self.why)
        if self.record:
            session.manifest.add_record(*self.record, component=component)


@dataclass
class Call(Action):
    """Python work that is neither a file nor a command (wait for a socket, start a daemon)."""

    why: str
    fn: Callable[[Session], Any]
    shown: Sequence[str] = ()

    def describe(self) -> str:
        return self.why

    def commands(self) -> list[str]:
        return list(self.shown)

    def run(self, session: Session, component: str) -> None:
        if not session.dry:
            self.fn(session)


@dataclass
class Warn(Action):
    """Nothing to do but tell the user (e.g. Defender is absent): never a failure."""

    message: str

    def describe(self) -> str:
        return f"warning: {self.message}"

    def run(self, session: Session, component: str) -> None:
        session.warn(self.message)
