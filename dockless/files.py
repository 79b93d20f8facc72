"""File writes that are atomic, idempotent and never silently clobber what a user wrote."""
from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

BOMS = {b"\xef\xbb\xbf": "UTF-8 with BOM", b"\xff\xfe": "UTF-16LE", b"\xfe\xff": "UTF-16BE"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def bad_encoding(data: bytes) -> str | None:
    """Name the encoding problem of a config file containerd must read (field case C02)."""
    for bom, name in BOMS.items():
        if data.startswith(bom):
            return name
    if len(data) > 3 and data[1:2] == b"\x00" and data[3:4] == b"\x00":
        return "UTF-16LE without BOM"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    return None


def as_utf8(data: bytes) -> bytes | None:
    """The text of a BOM/UTF-16 file as UTF-8 without BOM (line ends as they are), or None."""
    codecs = {"UTF-8 with BOM": "utf-8-sig", "UTF-16LE": "utf-16", "UTF-16BE": "utf-16",
              "UTF-16LE without BOM": "utf-16-le"}
    codec = codecs.get(bad_encoding(data) or "")
    try:
        return data.decode(codec).encode("utf-8") if codec else None
    except UnicodeDecodeError:
        return None


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write via a temp file in the same folder and ``os.replace``: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    remove_stale_temps(path)


def remove_stale_temps(path: Path) -> None:
    """Delete the temp files (``.<name>.XXXXXXXX.tmp``) that an interrupted atomic write of
    ``path`` left behind (a killed run); called after each successful write of ``path``."""
    stale = re.compile(r"\." + re.escape(path.name) + r"\.[a-z0-9_]{8}\.tmp")
    try:
        names = [e.name for e in os.scandir(path.parent) if stale.fullmatch(e.name)]
    except OSError:
        return
    for name in names:
        (path.parent / name).unlink(missing_ok=True)


def backup_name(local: Path) -> Path:
    """A free ``<name>.<timestamp>.bak`` next to ``local`` (``-1``, ``-2``… when taken)."""
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    backup = local.with_name(f"{local.name}.{stamp}.bak")
    n = 1
    while backup.exists():
        backup = local.with_name(f"{local.name}.{stamp}-{n}.bak")
        n += 1
    return backup


def unified_diff(old: bytes, new: bytes, name: str) -> str:
    a = old.decode("utf-8", "replace").splitlines(keepends=True)
    b = new.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"{name} (on disk)", f"{name} (dockless)"))


def read_toml(path: Path, error: type[Exception], *, who: str | None = None,
              what: str = "a TOML file") -> dict[str, Any] | None:
    """The TOML table in ``path``, or None when there is no such file. Every other problem
    (a folder, unreadable, a byte-order mark or UTF-16, not UTF-8, bad TOML) raises ``error``
    with one line naming ``who`` (default: the path) and the fix."""
    import tomllib

    who = who or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise error(f"{who}: is a folder, not {what}") from None
    except OSError as exc:
        raise error(f"{who}: cannot be read ({exc.strerror or exc})") from None
    encoding = bad_encoding(raw)
    if encoding == "not UTF-8":
        raise error(f"{path}: not valid UTF-8; save it as UTF-8 without BOM")
    if encoding:
        raise error(f"{path}: starts with a byte-order mark ({encoding}); save it as UTF-8 without BOM")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None
