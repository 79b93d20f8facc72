"""Safe extraction of release archives (.tar, .tar.gz/.tgz, .zip) and raw single-file installs.

The whole archive is scanned before anything is written: absolute names (``/x``,
``C:\\x``, ``\\x``), ``..`` components, links whose target leaves the destination,
members written through an archive symlink, device and fifo nodes are refused with
:class:`UnsafeArchive`.  tarfile's ``data`` filter runs on every tar member as a second
line of defence.  Each file is written to a temporary file in its destination
directory (hashed with sha256 as it is written, flushed with ``fsync``) and moved in place
with :func:`os.replace` (atomic per file) only once the whole archive has been checked.

A compressed tar is read once, front to back (tarfile's stream mode): its files are written
to their temporary files during that one pass and moved in place after it, when every member
has been seen and checked.  A refused archive leaves nothing behind (temporary files and the
folders made for them are removed).  Given the archive's ``sha256``, the bytes read are hashed
on the way and compared before anything is moved in place.
"""
from __future__ import annotations

import hashlib
import os
import queue
import re
import stat
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from dockless import killpoint
from dockless.files import remove_stale_temps
from dockless.writeback import Writeback

__all__ = ["ArchiveError", "UnsafeArchive", "MemberNotFound", "DigestMismatch", "extract", "raw_install"]

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


class DigestMismatch(ArchiveError):
    """The archive's bytes do not hash to the sha256 it was verified with (nothing was installed)."""


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


def _tar_entry(m: tarfile.TarInfo, archive: Path, dest: Path) -> _Entry | None:
    """The checked entry of one tar member (None for the archive root itself)."""
    data_filter = getattr(tarfile, "data_filter", None)
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
    return _Entry(name, kind, m.mode, link, m) if name else None


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


def _wanted(members: Collection[str] | None, archive: Path) -> dict[str, str] | None:
    return None if members is None else {_normalise(m, archive): m for m in members}


def _is_selected(name: str, wanted: dict[str, str] | None) -> bool:
    return wanted is None or name in wanted or any(name.startswith(w + "/") for w in wanted if w)


def _select(entries: list[_Entry], members: Collection[str] | None, archive: Path) -> list[_Entry]:
    wanted = _wanted(members, archive)
    if wanted is None:
        return entries
    names = {e.name for e in entries}
    for norm, orig in wanted.items():
        if norm not in names and not any(n.startswith(norm + "/") for n in names):
            raise MemberNotFound(f"{archive}: member {orig!r} not found in the archive")
    return [e for e in entries if _is_selected(e.name, wanted)]


def _plan(entries: list[_Entry], members: Collection[str] | None, flatten: bool, archive: Path) -> list[_Entry]:
    """The checks that need the whole member list; the entries to install, in archive order."""
    _check_links(entries, archive)
    selected = _select(entries, members, archive)
    if flatten:
        seen: dict[str, str] = {}
        for e in selected:
            if e.kind == "dir":
                continue
            b = e.name.rsplit("/", 1)[-1]
            if b in seen:
                raise ArchiveError(f"{archive}: cannot flatten, {seen[b]!r} and {e.name!r} share a name")
            seen[b] = e.name
    return selected


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


def _write_temp(src: IO[bytes], target: Path, mode: int) -> tuple[str, str]:
    """Copy *src* into a new temporary file next to *target*, hashing it on the way; its
    writeback to disk is started as it grows (the fsync before the move then waits little).
    Returns (temporary path, sha256)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            wb = Writeback(out)
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                wb.wrote(len(chunk))
                killpoint.progressed("extract", len(chunk))  # test hook; a no-op otherwise
            wb.finish()
        os.chmod(tmp, mode)
    except BaseException:
        _unlink(tmp)
        raise
    return tmp, h.hexdigest()


def _move_in_place(tmp: str, target: Path) -> None:
    """fsync the finished temporary file (crash-safe: never an empty or torn binary after a
    power cut), then ``os.replace`` it onto *target*."""
    try:
        fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        _unlink(tmp)
        raise
    remove_stale_temps(target)  # left by an interrupted earlier run


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _atomic_write(src: IO[bytes], target: Path, mode: int) -> str:
    """Copy *src* into *target* through a temporary file in the same directory; the sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, digest = _write_temp(src, target, mode)
    _move_in_place(tmp, target)
    return digest


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


class _ReadAhead:
    """Reads *src* on a helper thread, a few chunks ahead of the caller: decompression (which
    releases the GIL) runs on one core while the caller writes and hashes on the other."""

    def __init__(self, src: IO[bytes], depth: int = 4) -> None:
        self.q: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self.stop = self.eof = False
        self.t = threading.Thread(target=self._run, args=(src,), name="dockless-extract", daemon=True)
        self.t.start()

    def _run(self, src: IO[bytes]) -> None:
        try:
            while not self.stop:
                chunk = src.read(_CHUNK)
                self.q.put(chunk)
                if not chunk:
                    return
        except BaseException as e:  # handed to the reader
            self.q.put(e)

    def read(self, n: int = -1) -> bytes:
        """The next chunk (the caller reads _CHUNK at a time); b"" at the end."""
        if self.eof:
            return b""
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        self.eof = not item
        return item

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        while self.t.is_alive():  # a producer blocked on a full queue: make room until it sees stop
            try:
                self.q.get(timeout=0.01)
            except queue.Empty:
                pass
        self.t.join()


class _HashingReader:
    """A read-only file that hashes what is read from it (tarfile reads the archive through it)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        return data

    def hexdigest(self) -> str:
        """The sha256 of the whole file (what was not read yet is read now)."""
        while chunk := self.f.read(_CHUNK):
            self.h.update(chunk)
        return self.h.hexdigest()


def _check_digest(archive: Path, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected.lower():
        raise DigestMismatch(f"{archive}: sha256 {actual} does not match {expected.lower()}; nothing was installed")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _Staging:
    """The files of one extraction, written to temporary files next to their targets and moved
    in place together; :meth:`rollback` removes what a refused archive left (temporary files,
    the folders made for them), :meth:`commit` installs the checked entries."""

    def __init__(self, archive: Path, dest: Path) -> None:
        self.archive, self.dest = archive, dest
        self.made: list[Path] = []  # folders created here, parents first
        self.temps: dict[Path, str] = {}  # target -> its temporary file (the latest one)
        self.orphans: list[str] = []  # temporaries of a name met twice (the last one wins)
        self.data: dict[str, tuple[Path | str, str]] = {}  # member name -> (file holding its bytes, sha256)
        self.committing = False
        self.mkdirs(dest)
        self.root_real = os.path.realpath(dest)

    def mkdirs(self, path: Path) -> None:
        missing = []
        while not path.exists() and path != path.parent:
            missing.append(path)
            path = path.parent
        for p in reversed(missing):
            p.mkdir(exist_ok=True)
            self.made.append(p)

    def stage(self, e: _Entry, target: Path, src: IO[bytes], mode: int) -> None:
        _check_parent(self.root_real, target, self.archive, e.name)
        self.mkdirs(target.parent)
        tmp, digest = _write_temp(src, target, mode)
        if target in self.temps:
            self.orphans.append(self.temps[target])
        self.temps[target] = tmp
        self.data[e.name] = (tmp, digest)

    def rollback(self) -> None:
        for tmp in [*self.temps.values(), *self.orphans]:
            _unlink(tmp)
        self.temps.clear()
        if not self.committing:  # nothing was moved in place: the folders made for it go too
            for d in reversed(self.made):
                try:
                    d.rmdir()
                except OSError:
                    pass

    def commit(
        self,
        selected: list[_Entry],
        entries: list[_Entry],
        flatten: bool,
        digests: dict[Path, str] | None,
        reopen: Callable[[_Entry], IO[bytes]],
    ) -> list[Path]:
        """Move the staged files in place and create the links, in archive order.
        *reopen* reads a member that was not staged (the source of a link copy)."""
        self.committing = True
        links = {e.name: e.link for e in entries if e.kind == "symlink"}
        files = {e.name: e for e in entries if e.kind == "file"}
        written: list[Path] = []
        out = digests if digests is not None else {}
        for e in selected:
            rel = e.name.rsplit("/", 1)[-1] if flatten else e.name
            target = self.dest / rel
            if e.kind == "dir":
                if not flatten:
                    _check_parent(self.root_real, target, self.archive, e.name)
                    target.mkdir(parents=True, exist_ok=True)
                continue
            _check_parent(self.root_real, target, self.archive, e.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if e.kind == "file":
                tmp = self.temps.pop(target, None)
                if tmp is not None:  # else: a name met twice, already in place
                    _move_in_place(tmp, target)
                    digest = self.data[e.name][1]
                    self.data[e.name] = (target, digest)
                    out[target] = digest
                written.append(target)
                continue
            if e.kind == "symlink":
                resolved = "/".join(_resolve(e.name.split("/")[:-1], e.link, links) or [])
                if not flatten:
                    try:
                        _atomic_symlink(e.link, target)
                    except OSError:
                        pass  # e.g. Windows without symlink privilege: copy instead
                    else:
                        if resolved in self.data:
                            out[target] = self.data[resolved][1]
                        written.append(target)
                        continue
                if resolved not in files:
                    continue  # link to a directory (or dangling): nothing to copy
                source = files[resolved]
            else:  # hardlink
                source = files[e.link]
            out[target] = self._copy(source, e, target, reopen)
            written.append(target)
        for tmp in self.orphans:
            _unlink(tmp)
        return written

    def _copy(self, source: _Entry, e: _Entry, target: Path, reopen: Callable[[_Entry], IO[bytes]]) -> str:
        mode = _exec_mode(source.mode, source.name)
        if source.name in self.data:  # staged or already in place: copy that file
            path, digest = self.data[source.name]
            with open(path, "rb") as src:
                _atomic_write(src, target, mode)
            return digest
        with reopen(e if e.kind == "hardlink" else source) as src:
            return _atomic_write(src, target, mode)


def _kind(archive: Path) -> Literal["zip", "tar"]:
    try:
        if _is_zip(archive):
            return "zip"
        if tarfile.is_tarfile(archive):
            return "tar"
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise ArchiveError(f"{archive}: corrupt archive: {e}") from None
    raise ArchiveError(f"{archive}: not a tar, tar.gz or zip archive")


@contextmanager
def _corrupt_as_archive_error(archive: Path) -> Iterator[None]:
    try:
        yield
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise ArchiveError(f"{archive}: corrupt archive: {e}") from None


@contextmanager
def _tar_member(archive: Path, e: _Entry) -> Iterator[IO[bytes]]:
    """One member's bytes by random access (the source of a link copy that was not staged)."""
    assert isinstance(e.ref, tarfile.TarInfo)
    with _corrupt_as_archive_error(archive), tarfile.open(archive, "r:*") as tf:
        stream = tf.extractfile(tf.getmember(e.ref.name))  # follows hard and sym links inside the archive
        if stream is None:
            raise ArchiveError(f"member {e.name!r} has no data")
        with stream:
            yield stream


def _extract_tar(
    archive: Path, dest: Path, members: Collection[str] | None, flatten: bool, sha256: str | None,
    digests: dict[Path, str] | None,
) -> list[Path]:
    """One pass over the (compressed) tar: check each member and stage the selected files."""
    wanted = _wanted(members, archive)
    entries: list[_Entry] = []
    staging = _Staging(archive, dest)
    try:
        with open(archive, "rb") as raw, _corrupt_as_archive_error(archive):
            reader = _HashingReader(raw)
            with tarfile.open(fileobj=reader, mode="r|*", bufsize=_CHUNK) as tf:  # type: ignore[call-overload]
                for m in tf:
                    e = _tar_entry(m, archive, dest)
                    if e is None:
                        continue
                    entries.append(e)
                    if e.kind == "file" and _is_selected(e.name, wanted):
                        target = dest / (e.name.rsplit("/", 1)[-1] if flatten else e.name)
                        src = tf.extractfile(m)
                        if src is None:
                            raise ArchiveError(f"member {e.name!r} has no data")
                        with src, (_ReadAhead(src) if m.size > 2 * _CHUNK else nullcontext(src)) as data:
                            staging.stage(e, target, data, _exec_mode(e.mode, e.name))
            if sha256 is not None:
                _check_digest(archive, reader.hexdigest(), sha256)
        selected = _plan(entries, members, flatten, archive)
        return staging.commit(selected, entries, flatten, digests, lambda ent: _tar_member(archive, ent))
    except BaseException:
        staging.rollback()
        raise


def _extract_zip(
    archive: Path, dest: Path, members: Collection[str] | None, flatten: bool, sha256: str | None,
    digests: dict[Path, str] | None,
) -> list[Path]:
    if sha256 is not None:
        _check_digest(archive, _file_sha256(archive), sha256)
    with _corrupt_as_archive_error(archive), zipfile.ZipFile(archive) as zf:
        entries = _scan_zip(zf, archive)
        selected = _plan(entries, members, flatten, archive)
        staging = _Staging(archive, dest)
        try:
            for e in selected:
                if e.kind == "file":
                    assert isinstance(e.ref, zipfile.ZipInfo)
                    target = dest / (e.name.rsplit("/", 1)[-1] if flatten else e.name)
                    with zf.open(e.ref) as src:
                        staging.stage(e, target, src, _exec_mode(e.mode, e.name))
            return staging.commit(selected, entries, flatten, digests, lambda ent: zf.open(ent.ref))  # type: ignore[arg-type]
        except BaseException:
            staging.rollback()
            raise


def extract(
    archive: Path,
    dest: Path,
    members: Collection[str] | None = None,
    *,
    flatten: bool = False,
    sha256: str | None = None,
    digests: dict[Path, str] | None = None,
) -> list[Path]:
    """Extract *archive* into *dest* safely and return the paths written (files and links).

    The format is detected from the content (tar, compressed tar, zip).  *members*
    limits extraction to those names (a directory name selects its subtree); a missing
    one raises :class:`MemberNotFound`.  ``flatten=True`` writes each selected file by
    its basename directly into *dest* (symlinks are written as copies of their target).
    Executable files get mode 0o755, others 0o644.

    *sha256*: the archive's expected digest, checked on the bytes read before anything is
    moved in place (:class:`DigestMismatch`).  *digests*, when given, receives the sha256 of
    every file written (path -> hex), computed while writing.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        if _kind(archive) == "zip":
            return _extract_zip(archive, dest, members, flatten, sha256, digests)
        return _extract_tar(archive, dest, members, flatten, sha256, digests)
    except ArchiveError as e:
        if sha256 is not None and not isinstance(e, DigestMismatch):  # a damaged copy: say so, not "corrupt"
            _check_digest(archive, _file_sha256(archive), sha256)
        raise


def raw_install(
    src: Path, dest: Path, mode: int = 0o755, *, sha256: str | None = None, digests: dict[Path, str] | None = None
) -> Path:
    """Atomically copy a single-file asset *src* to *dest* (e.g. ``runc.amd64`` -> ``runc``).

    *sha256* and *digests* as for :func:`extract` (the copy is hashed as it is written and
    compared before it is moved in place)."""
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f:
        tmp, digest = _write_temp(f, dest, mode)
    try:
        _check_digest(src, digest, sha256)
    except BaseException:
        _unlink(tmp)
        raise
    _move_in_place(tmp, dest)
    if digests is not None:
        digests[dest] = digest
    return dest
