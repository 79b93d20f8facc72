"""Parse published sha256 checksum files, whatever format the release uses.

Formats seen in the releases dockless installs (DESIGN.md §3):

* ``<hex>  name`` (GNU coreutils text mode; containerd ``.sha256sum``)
* ``<hex> *name`` (coreutils binary mode)
* ``<hex>  ./release/name`` (windows-container-networking: matched by basename)
* ``<hex>`` alone (crictl, CNI plugins ``.sha256``: the file is for one asset)
* several ``<hex>  name`` lines in one file (runc ``runc.sha256sum``)
* ``SHA256 (name) = <hex>`` (BSD ``shasum --tag``), accepted for good measure
"""
from __future__ import annotations

import re

__all__ = ["ChecksumError", "parse_checksum", "is_sha256"]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_BSD = re.compile(r"^SHA256\s*\((?P<name>.+)\)\s*=\s*(?P<hex>\S+)$", re.IGNORECASE)


class ChecksumError(Exception):
    """A checksum file is malformed or does not list the wanted asset (one-line message)."""


def is_sha256(value: str) -> bool:
    """True when *value* is exactly 64 hexadecimal characters."""
    return bool(_HEX64.fullmatch(value))


def _basename(name: str) -> str:
    """Last path component of *name*, for ``/`` and ``\\`` separators alike."""
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _entries(text: str, where: str) -> list[tuple[str, str | None]]:
    """(digest, name or None) for every non-empty, non-comment line of *text*."""
    entries: list[tuple[str, str | None]] = []
    for lineno, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        bsd = _BSD.match(line)
        if bsd:
            digest, name = bsd.group("hex"), bsd.group("name").strip()
        else:
            parts = line.split(None, 1)
            digest = parts[0]
            if digest.lower().startswith("sha256:"):
                digest = digest[len("sha256:"):]
            name = parts[1].strip() if len(parts) == 2 else None
            if name is not None and name.startswith("*"):
                name = name[1:]
        if not is_sha256(digest):
            raise ChecksumError(
                f"{where}: line {lineno} is not a sha256 entry: {line[:80]!r}"
            )
        entries.append((digest.lower(), name or None))
    return entries


def parse_checksum(text: str, asset_name: str, source: str = "") -> str:
    """Return the lowercase sha256 hex digest for *asset_name* found in *text*.

    *asset_name* and the names in the file are compared exactly first, then by
    basename (``./release/nat.zip`` matches ``nat.zip``).  A file holding a bare
    digest alone is taken to be the checksum of *asset_name*.  *source* (a URL or
    path) only serves error messages.  Raises :class:`ChecksumError` when the file
    is empty, malformed, ambiguous or does not list the asset.
    """
    where = source or "checksum file"
    entries = _entries(text, where)
    if not entries:
        raise ChecksumError(f"{where}: empty checksum file, no sha256 for {asset_name}")

    bare = [digest for digest, name in entries if name is None]
    if bare:
        if len(entries) == 1:
            return bare[0]
        raise ChecksumError(
            f"{where}: mixes bare digests and named entries, cannot tell which is {asset_name}"
        )

    wanted = _basename(asset_name)
    exact = {d for d, n in entries if n == asset_name}
    found = exact or {d for d, n in entries if n is not None and _basename(n) == wanted}
    if len(found) == 1:
        return found.pop()
    if len(found) > 1:
        raise ChecksumError(f"{where}: lists {asset_name} with different sha256 values")
    listed = ", ".join(sorted({_basename(n) for _, n in entries if n}))[:200]
    raise ChecksumError(f"{where}: no sha256 for {asset_name} (lists: {listed})")
