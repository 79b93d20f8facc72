"""``versions.lock``: the sha256 of every pinned artifact of both targets into versions.toml.

Both targets are planned as fresh hosts; for each Install artifact the release's published
checksum file is read with the download code (same formats, same cache, the mirror applies);
an artifact with no published checksum (``hns.psm1``) is downloaded and hashed. The digests go
into the ``[sha256]`` table with ``tomlkit``, so comments and layout stay; a run that finds
nothing new leaves the file untouched. An existing pin that differs from what the release
publishes is kept (and reported) unless ``force``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import tomlkit
from tomlkit.items import Table

from dockless.bundle import fresh_session, planned_artifacts
from dockless.download import Artifact, Cache, fetch, published_checksum
from dockless.files import atomic_write
from dockless.registry import Registry
from dockless.settings import TARGETS, Settings
from dockless.urls import url_basename


@dataclass(frozen=True)
class Lock:
    name: str  # key in [sha256]: the asset file name, or e.g. hns.psm1@<commit>
    sha256: str
    source: str  # where the digest came from (checksum file or downloaded asset URL)


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def digest(artifact: Artifact, cache: Cache) -> Lock:
    """The sha256 the release publishes for ``artifact`` (ignoring any pin), else the sha256
    of the downloaded asset."""
    published = published_checksum(artifact, cache)
    if published is not None:
        return Lock(artifact.pin_key or url_basename(published.url), published.sha256, published.checksum_url)
    blob = fetch(replace(artifact, sha256=None, allow_unverified=True), cache)
    return Lock(artifact.pin_key or artifact.filename, _hash(blob), f"downloaded {artifact.urls[0]}")


def compute(settings: Settings, registry: Registry, cache: Cache | None = None,
            targets: tuple[str, ...] = TARGETS) -> list[Lock]:
    """One :class:`Lock` per pinned artifact of ``targets`` (fresh-host plans), in plan order."""
    cache = cache or Cache()
    locks: dict[str, Lock] = {}
    for target in targets:
        for artifact in planned_artifacts(fresh_session(settings, registry, target)):
            lock = digest(artifact, cache)
            locks.setdefault(lock.name, lock)
    return list(locks.values())


@dataclass
class Outcome:
    added: list[Lock]
    changed: list[tuple[Lock, str]]  # (new, old) replaced with force
    kept: list[tuple[Lock, str]]  # (published, pinned) that differ, kept without force
    written: bool


def write(path: Path, locks: list[Lock], *, dry: bool = False, force: bool = False) -> Outcome:
    """Put ``locks`` into ``[sha256]`` of ``path`` keeping comments and layout; write only on change."""
    text = path.read_bytes().decode("utf-8") if path.exists() else ""  # bytes: CRLF files stay CRLF
    doc = tomlkit.parse(text)
    table = doc.get("sha256")
    if table is None:
        table = tomlkit.table()
        table.add(tomlkit.comment('"<asset file name>" = "<hex>"   (a pin here wins over the release\'s published checksum)'))
        doc.add("sha256", table)
    elif not isinstance(table, Table):
        raise ValueError(f"{path.name}: sha256 must be a table of asset = \"hex\"")
    out = Outcome([], [], [], False)
    for lock in locks:
        current = table.get(lock.name)
        current = str(current).lower() if current is not None else None
        if current == lock.sha256:
            continue
        if current is None:
            out.added.append(lock)
        elif force:
            out.changed.append((lock, current))
        else:
            out.kept.append((lock, current))
            continue
        table[lock.name] = lock.sha256
    if (out.added or out.changed) and not dry:
        mode = path.stat().st_mode & 0o7777 if path.exists() else None
        atomic_write(path, tomlkit.dumps(doc).encode("utf-8"), mode)
        out.written = True
    return out
