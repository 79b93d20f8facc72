"""Offline bundles: every artifact a target's ``setup`` installs, verified, in a mirror folder.

``invoke bundle DIR --target windows`` plans the target as a fresh host, downloads and verifies
each Install action's artifact (:func:`~dockless.download.fetch_all`, so the cache and the
mirror apply), and lays the blobs out under their github.com paths with the published checksum
file next to each one, plus ``DIR/manifest.json``. ``DOCKLESS_MIRROR=DIR`` (a path),
``file://DIR`` or any HTTP server over DIR then serves a ``setup`` with no other network access.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from invoke import Context

from dockless import __version__
from dockless.actions import Install, StepFailed
from dockless.archive import raw_install
from dockless.download import (
    Artifact,
    Cache,
    DownloadError,
    fetch_all,
    published_checksum,
)
from dockless.files import atomic_write
from dockless.registry import PluginError, Registry
from dockless.session import Session
from dockless.settings import Settings

GITHUB = "https://github.com/"
MANIFEST = "manifest.json"


class BundleError(Exception):
    """A bundle cannot be made; one line naming the step, artifact or URL."""


def fresh_session(settings: Settings, registry: Registry, target: str, c: Context | None = None) -> Session:
    """A dry session that plans ``target`` as a new host: nothing is probed or read from this
    machine, so every install is planned. A CNI choice that does not exist on ``target`` (set
    for the other platform) falls back to the target's default provider."""
    fresh = replace(settings.with_flags(target=target), fresh=True, fs_root=None)
    try:
        return Session(c or Context(), fresh, registry, dry=True)
    except PluginError:
        if target == settings.target or fresh.cni is None:
            raise
        return Session(c or Context(), replace(fresh, cni=None), registry, dry=True)


def planned_artifacts(session: Session) -> list[Artifact]:
    """The artifact of every Install action in the session's plan, in step order, once each."""
    seen: dict[str, Artifact] = {}
    for step_id in session.steps:
        try:
            actions = session.plan_step(step_id)
        except StepFailed as exc:
            raise BundleError(f"{step_id}: {exc}") from None
        for action in actions:
            if isinstance(action, Install):
                a = action.artifact
                if a.key in seen and seen[a.key] != a:
                    raise BundleError(f"two different artifacts are both named {a.key!r} ({seen[a.key].urls[0]}, {a.urls[0]})")
                seen.setdefault(a.key, a)
    return list(seen.values())


def release_path(url: str, mirror: str | None) -> str:
    """``owner/repo/releases/download/vX/asset``: *url* relative to the mirror or github.com."""
    rel = None
    if mirror:
        base = mirror.rstrip("/") + "/"
        if url.startswith(base):
            rel = url[len(base):]
    if rel is None and url.startswith(GITHUB):
        rel = url[len(GITHUB):]
    if rel is None:
        raise BundleError(f"{url} is not a github.com asset: only those are served from a mirror, so it cannot be bundled")
    parts = rel.replace("\\", "/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"{url}: unusable path {rel!r} for a bundle")
    return "/".join(parts)


def make_bundle(
    session: Session,
    dest: Path,
    *,
    cache: Cache | None = None,
    progress: bool | None = None,
    warn: Any = None,
) -> dict[str, Any]:
    """Download and verify every artifact ``session`` (a :func:`fresh_session`) plans into
    ``dest`` under github.com paths; write and return ``dest/manifest.json``."""
    artifacts = planned_artifacts(session)
    if not artifacts:
        raise BundleError(f"the {session.settings.target} plan installs nothing: no bundle to make")
    cache = cache or session.cache
    mirror = session.settings.mirror
    blobs = fetch_all(artifacts, cache, progress=progress)
    dest = Path(dest)
    entries = []
    for a in artifacts:
        blob = blobs[a.key]
        sha = blob.name  # the cache is content-addressed: the blob's name is its sha256
        try:
            published = published_checksum(a, cache)
        except DownloadError:
            if a.sha256 is None:
                raise
            published = None  # pinned: the pin is what setup checks
        url = published.url if published else a.urls[0]
        rel = release_path(url, mirror)
        raw_install(blob, dest / rel, 0o644)
        checksum_rel = None
        if published is not None and published.sha256 == sha:
            checksum_rel = release_path(published.checksum_url, mirror)
            atomic_write(dest / checksum_rel, published.text.encode("utf-8"))
        elif published is not None and warn:
            warn(f"{a.label}: the published checksum of {Path(rel).name} differs from the sha256 pinned in "
                 f"versions.toml; the bundle holds the pinned file without the checksum file")
        entries.append({
            "key": a.key,
            "version": a.version,
            "path": rel,
            "url": GITHUB + rel,
            "sha256": sha,
            "size": blob.stat().st_size,
            "checksum": checksum_rel,
            "pin": a.pin_key or Path(rel).name,
        })
    manifest = {
        "format": 1,
        "dockless": __version__,
        "target": session.settings.target,
        "versions": {a.key: a.version for a in artifacts},
        "artifacts": entries,
    }
    atomic_write(dest / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest


def read_manifest(dest: Path) -> dict[str, Any]:
    return json.loads((Path(dest) / MANIFEST).read_text(encoding="utf-8"))
