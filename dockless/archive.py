"""Safe extraction of release archives (.tar, .tar.gz/.tgz, .zip) and raw single-file installs.

The whole archive is scanned before anything is written: absolute names (``/x``,
``C:\\x``, ``\\x``), ``..`` components, links whose target leaves the destination,
members written through an archive symlink, device and fifo nodes are refused with
:class:`UnsafeArchive`.  tarfile's ``data`` filter runs on every tar member as a second
line of defence.  Each file is written to a temporary file in its destination
directory and moved in place with :func:`os.replace` (atomic per file).
"""
from __future__ import annotations

import os
import re
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from dockless import killpoint
from dockless.files import remove_stale_temps

__all__ = ["ArchiveError", "UnsafeArchive", "MemberNotFound", "extract", "raw_install"]

_CHUNK = 1 << 20
_MAX_LINK_DEPTH = 40
_DRIVE = re.compile(r"^[A-Za-z]:")
_EXEC_SUFFIXES = (".exe", ".bat", ".cmd", ".ps1", ".sh")


class ArchiveError(Exception):
    """An archive cannot be read or does not hold what was asked for."""


class UnsafeArchive(ArchiveError):
    """An archive member would write outside the destination or is not a plain file/dir/link."""


class MemberNotFound(ArchiveError):
    """A requested member is not in the archive."""


Kind = Literal["file", "dir", "symlink", "hardlink"]


@dataclass
class _Entry:
    name: str  # normalised, "/"-separated, no leading "./"
    kind: Kind
    mode: int
    link: str  # symlink target (raw) or hardlink target (normalised archive name)
    ref: tarfile.TarInfo | zipfile.ZipInfo


def _normalise(name: str, archive: Path) -> str:
    """Normalised member name; raises UnsafeArchive for absolute or ``..`` names."""
    if "\x00" in name:
        raise UnsafeArchive(f"{archive}: member {name!r} has a NUL byte in its name")
    n = name.replace("\\", "/")
    if n.startswith("/") or _DRIVE.match(n):
        raise UnsafeArchive(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"{archive}: member {name!r} has a '..' component")
    if os.name == "nt" and any(":" in p for p in parts):
        raise UnsafeArchive(f"{archive}: member {name!r} has a ':' (alternate data stream)")
    return "/".join(parts)


def _resolve(parent: list[str], target: str, links: dict[str, str], depth: int = 0) -> list[str] | None:
    """Resolve symlink *target* from directory *parent* inside the archive tree.

    Archive symlinks met on the way are followed.  Returns the resolved components,
    or None when the target is absolute, climbs above the root or loops.
    """
    t = target.replace("\\", "/")
    if t.startswith("/") or _DRIVE.match(t) or depth > _MAX_LINK_DEPTH:
        return None
    stack = list(parent)
    for comp in t.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(comp)
        key = "/".join(stack)
        if key in links:
            stack.pop()
            resolved = _resolve(stack, links[key], links, depth + 1)
            if resolved is None:
                return None
            stack = resolved
    return stack


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head in (b"PK\x03\x04", b"PK\x05\x06") or zipfile.is_zipfile(path)


def _exec_mode(mode: int, name: str, known: bool = True) -> int:
    if not known:
        return 0o755 if name.lower().endswith(_EXEC_SUFFIXES) else 0o644
    return 0o755 if mode & 0o111 else 0o644


def _scan_tar(tf: tarfile.TarFile, archive: Path, dest: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    data_filter = getattr(tarfile, "data_filter", None)
    for m in tf.getmembers():
        name = _normalise(m.name, archive)
        if m.ischr() or m.isblk() or m.isfifo():
            raise UnsafeArchive(f"{archive}: member {m.name!r} is a device or fifo node")
        if m.isdir():
            kind: Kind = "dir"
            link = ""
        elif m.isreg():
            kind, link = "file", ""
        elif m.issym():
            kind, link = "symlink", m.linkname
        elif m.islnk():
            kind = "hardlink"
            try:
                link = _normalise(m.linkname, archive)
            except UnsafeArchive:
                raise UnsafeArchive(
                    f"{archive}: member {m.name!r} is a hardlink to {m.linkname!r} outside the destination"
                ) from None
        else:
            raise UnsafeArchive(f"{archive}: member {m.name!r} has an unsupported type {m.type!r}")
        if data_filter is not None:
            try:
                data_filter(m, str(dest))
            except tarfile.FilterError as e:
                raise UnsafeArchive(f"{archive}: member {m.name!r} refused: {e}") from None
        if name:
            entries.append(_Entry(name, kind, m.mode, link, m))
    return entries


def _scan_zip(zf: zipfile.ZipFile, archive: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    for zi in zf.infolist():
        name = _normalise(zi.filename, archive)
        umode = zi.external_attr >> 16
        ftype = stat.S_IFMT(umode)
        if ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            raise UnsafeArchive(f"{archive}: member {zi.filename!r} is a device, fifo or socket node")
        if zi.is_dir() or ftype == stat.S_IFDIR:
            kind: Kind = "dir"
            link = ""
        elif ftype == stat.S_IFLNK:
            kind = "symlink"
            link = zf.read(zi).decode("utf-8", "replace")
        else:
            kind, link = "file", ""
        mode = _exec_mode(umode, name, known=bool(umode & 0o777))
        if name:
            entries.append(_Entry(name, kind, mode, link, zi))
    return entries


def _check_links(entries: list[_Entry], archive: Path) -> None:
    """Refuse links leaving the tree and members written through an archive symlink."""
    links = {e.name: e.link for e in entries if e.kind == "symlink"}
    files = {e.name for e in entries if e.kind == "file"}
    for e in entries:
        parts = e.name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise UnsafeArchive(
                    f"{archive}: member {e.name!r} is inside the symlink {'/'.join(parts[:i])!r}"
                )
        if e.kind == "symlink" and _resolve(parts[:-1], e.link, links) is None:
            raise UnsafeArchive(
                f"{archive}: member {e.name!r} is a symlink to {e.link!r} outside the destination"
            )
        if e.kind == "hardlink" and e.link not in files:
            raise UnsafeArchive(
                f"{archive}: member {e.name!r} is a hardlink to {e.link!r}, not a file of the archive"
            )


def _select(entries: list[_Entry], members: Collection[str] | None, archive: Path) -> list[_Entry]:
    if members is None:
        return entries
    wanted = {_normalise(m, archive): m for m in members}
    names = {e.name for e in entries}
    for norm, orig in wanted.items():
        if norm not in names and not any(n.startswith(norm + "/") for n in names):
            raise MemberNotFound(f"{archive}: member {orig!r} not found in the archive")
    return [
        e for e in entries
        if e.name in wanted or any(e.name.startswith(w + "/") for w in wanted if w)
    ]


def _within(root_real: str, path: Path) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _check_parent(root_real: str, target: Path, archive: Path, member: str) -> None:
    """Refuse *target* when its nearest existing ancestor (a pre-existing symlink in
    the destination, say) resolves outside the destination."""
    probe = target.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not _within(root_real, probe):
        raise UnsafeArchive(f"{archive}: member {member!r} would be written outside the destination")


def _atomic_write(src: IO[bytes], target: Path, mode: int) -> None:
    """Copy *src* into *target* through a temporary file in the same directory."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                killpoint.progressed("extract", len(chunk))  # test hook; a no-op otherwise
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    remove_stale_temps(target)  # left by an interrupted earlier run


def _atomic_symlink(link_target: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.lnk.tmp"
    try:
        os.symlink(link_target, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def _open(archive: Path) -> Iterator[tarfile.TarFile | zipfile.ZipFile]:
    try:
        if _is_zip(archive):
            with zipfile.ZipFile(archive) as zf:
                yield zf
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                yield tf
        else:
            raise ArchiveError(f"{archive}: not a tar, tar.gz or zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise ArchiveError(f"{archive}: corrupt archive: {e}") from None


def _member_stream(ar: tarfile.TarFile | zipfile.ZipFile, e: _Entry) -> IO[bytes]:
    if isinstance(ar, zipfile.ZipFile):
        assert isinstance(e.ref, zipfile.ZipInfo)
        return ar.open(e.ref)
    assert isinstance(e.ref, tarfile.TarInfo)
    stream = ar.extractfile(e.ref)  # follows hard and sym links inside the archive
    if stream is None:
        raise ArchiveError(f"member {e.name!r} has no data")
    return stream


def extract(
    archive: Path,
    dest: Path,
    members: Collection[str] | None = None,
    *,
    flatten: bool = False,
) -> list[Path]:
    """Extract *archive* into *dest* safely and return the paths written (files and links).

    The format is detected from the content (tar, compressed tar, zip).  *members*
    limits extraction to those names (a directory name selects its subtree); a missing
    one raises :class:`MemberNotFound`.  ``flatten=True`` writes each selected file by
    its basename directly into *dest* (symlinks are written as copies of their target).
    Executable files get mode 0o755, others 0o644.
    """
    archive, dest = Path(archive), Path(dest)
    with _open(archive) as ar:
        if isinstance(ar, zipfile.ZipFile):
            entries = _scan_zip(ar, archive)
        else:
            entries = _scan_tar(ar, archive, dest)
        _check_links(entries, archive)
        selected = _select(entries, members, archive)
        if flatten:
            base = [e for e in selected if e.kind != "dir"]
            seen: dict[str, str] = {}
            for e in base:
                b = e.name.rsplit("/", 1)[-1]
                if b in seen:
                    raise ArchiveError(f"{archive}: cannot flatten, {seen[b]!r} and {e.name!r} share a name")
                seen[b] = e.name
        links = {e.name: e.link for e in entries if e.kind == "symlink"}
        files = {e.name: e for e in entries if e.kind == "file"}

        dest.mkdir(parents=True, exist_ok=True)
        root_real = os.path.realpath(dest)
        written: list[Path] = []
        for e in selected:
            rel = e.name.rsplit("/", 1)[-1] if flatten else e.name
            target = dest / rel
            if e.kind == "dir":
                if not flatten:
                    _check_parent(root_real, target, archive, e.name)
                    target.mkdir(parents=True, exist_ok=True)
                continue
            _check_parent(root_real, target, archive, e.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if e.kind == "symlink":
                resolved = "/".join(_resolve(e.name.split("/")[:-1], e.link, links) or [])
                if not flatten:
                    try:
                        _atomic_symlink(e.link, target)
                        written.append(target)
                        continue
                    except OSError:
                        pass  # e.g. Windows without symlink privilege: copy instead
                if resolved not in files:
                    continue  # link to a directory (or dangling): nothing to copy
                src_entry = files[resolved]
                with _member_stream(ar, src_entry) as src:
                    _atomic_write(src, target, _exec_mode(src_entry.mode, src_entry.name))
            else:
                mode_entry = files[e.link] if e.kind == "hardlink" else e
                with _member_stream(ar, e) as src:
                    _atomic_write(src, target, _exec_mode(mode_entry.mode, mode_entry.name))
            written.append(target)
        return written


def raw_install(src: Path, dest: Path, mode: int = 0o755) -> Path:
    """Atomically copy a single-file asset *src* to *dest* (e.g. ``runc.amd64`` -> ``runc``)."""
    src, dest = Path(src), Path(dest)
    with open(src, "rb") as f:
        _atomic_write(f, dest, mode)
    return dest
