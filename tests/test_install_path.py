"""The install path: one pass over a compressed tar, files hashed while written (the manifest
takes those digests), the archive's sha256 checked again on the bytes unpacked, nothing moved in
place before the whole archive is checked, and early writeback before each fsync."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path, PureWindowsPath

import pytest
from invoke import Exit

from dockless.archive import ArchiveError, DigestMismatch, UnsafeArchive, extract, raw_install
from dockless.cache import Cache
from dockless.testing.mirror import windows_mirror
from dockless.testing.windows import FakeWindowsHost, HostState, run_setup, windows_session, windows_settings
from dockless.writeback import STEP, Writeback

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX symlinks")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tgz(path: Path, members: list[tuple[str, bytes] | tuple[str, bytes, dict]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            name, data, *rest = m
            opts = rest[0] if rest else {}
            ti = tarfile.TarInfo(name)
            ti.mode = opts.get("mode", 0o755)
            ti.type = opts.get("type", tarfile.REGTYPE)
            ti.linkname = opts.get("linkname", "")
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            tf.addfile(ti, io.BytesIO(data) if ti.size else None)
    return path


def everything(root: Path) -> list[str]:
    """Every path under root, hidden temporary files included."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def box(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


BIG = os.urandom(3 << 20)  # several read chunks


# ----------------------------------------------------------------------------- digests
@posix_only
def test_digest_of_every_file_written_is_its_sha256(box: Path) -> None:
    arc = make_tgz(box / "src" / "a.tgz", [
        ("bin/", b"", {"type": tarfile.DIRTYPE}),
        ("bin/tool", BIG),
        ("bin/small", b"small"),
        ("tool", b"", {"type": tarfile.SYMTYPE, "linkname": "bin/tool"}),
        ("bin/alias", b"", {"type": tarfile.LNKTYPE, "linkname": "bin/small"}),
    ])
    dest, digests = box / "out" / "d", {}
    written = extract(arc, dest, digests=digests, sha256=sha(arc.read_bytes()))
    assert sorted(p.relative_to(dest).as_posix() for p in written) == ["bin/alias", "bin/small", "bin/tool", "tool"]
    assert digests == {p: sha(p.read_bytes()) for p in written}  # a symlink: the digest of what it points to
    assert os.readlink(dest / "tool") == "bin/tool"

    flat, digests = box / "out" / "flat", {}
    written = extract(arc, flat, ["tool", "bin/alias"], flatten=True, digests=digests)  # copies of unselected members
    assert {p.name: digests[p] for p in written} == {"tool": sha(BIG), "alias": sha(b"small")}
    assert everything(flat) == ["alias", "tool"]


def test_zip_and_raw_install_report_digests(box: Path) -> None:
    import zipfile

    z = box / "src" / "a.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("nat.exe", BIG)
    digests: dict[Path, str] = {}
    [path] = extract(z, box / "out" / "cni", sha256=sha(z.read_bytes()), digests=digests)
    assert digests == {path: sha(BIG)}

    src = box / "src" / "runc.amd64"
    src.write_bytes(BIG)
    digests = {}
    dest = raw_install(src, box / "out" / "bin" / "runc", sha256=sha(BIG), digests=digests)
    assert digests == {dest: sha(BIG)} and dest.read_bytes() == BIG


# ----------------------------------------------------------------------------- verification
@pytest.mark.parametrize("kind", ["tgz", "zip", "raw"])
def test_wrong_archive_sha256_installs_nothing(box: Path, kind: str) -> None:
    if kind == "tgz":
        src = make_tgz(box / "src" / "a.tgz", [("bin/tool", BIG), ("bin/other", b"x")])
    elif kind == "zip":
        import zipfile

        src = box / "src" / "a.zip"
        with zipfile.ZipFile(src, "w") as zf:
            zf.writestr("tool", BIG)
    else:
        src = box / "src" / "runc.amd64"
        src.write_bytes(BIG)
    wrong = sha(b"something else")
    with pytest.raises(DigestMismatch, match=wrong) as info:
        if kind == "raw":
            raw_install(src, box / "out" / "bin" / "runc", sha256=wrong)
        else:
            extract(src, box / "out" / "dest", sha256=wrong)
    assert "\n" not in str(info.value)
    leftovers = everything(box / "out")
    assert leftovers in ([], ["bin"]), leftovers  # raw_install makes its folder first; never a file


# ----------------------------------------------------------------------------- nothing moved in place early
def test_a_bad_member_after_good_ones_leaves_the_previous_install_as_it_was(box: Path) -> None:
    dest = box / "out" / "dest"
    extract(make_tgz(box / "src" / "v1.tgz", [("bin/tool", b"v1"), ("bin/other", b"v1")]), dest)
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    bad = make_tgz(box / "src" / "v2.tgz", [("bin/tool", BIG), ("new/file", b"x"), ("../evil", b"x")])
    with pytest.raises(UnsafeArchive):
        extract(bad, dest)
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before
    assert everything(dest) == ["bin", "bin/other", "bin/tool"]  # no temporary file, no new folder


def test_truncated_archive_leaves_nothing(box: Path) -> None:
    whole = make_tgz(box / "src" / "whole.tgz", [("bin/a", BIG), ("bin/b", os.urandom(1 << 20))]).read_bytes()
    raw = gzip.decompress(whole)
    cut = box / "src" / "cut.tgz"
    cut.write_bytes(gzip.compress(raw[: len(BIG) + 512 + 4096]))  # ends inside the second member
    with pytest.raises(ArchiveError):
        extract(cut, box / "out" / "dest")
    assert everything(box / "out") == []


def test_refusal_keeps_a_destination_that_existed(box: Path) -> None:
    dest = box / "out" / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    with pytest.raises(UnsafeArchive):
        extract(make_tgz(box / "src" / "t.tgz", [("deep/er/ok", BIG), ("/abs", b"x")]), dest)
    assert everything(box / "out") == ["dest", "dest/mine.txt"]


# ----------------------------------------------------------------------------- writeback
@pytest.mark.parametrize("enabled", [True, False])
def test_writeback_keeps_the_bytes(tmp_path: Path, enabled: bool) -> None:
    data = os.urandom(STEP + (STEP // 3))
    path = tmp_path / "f"
    with open(path, "wb") as f:
        wb = Writeback(f, enabled=enabled)
        for i in range(0, len(data), 1 << 20):
            f.write(data[i:i + (1 << 20)])
            wb.wrote(len(data[i:i + (1 << 20)]))
        wb.finish()
    assert path.read_bytes() == data


# ----------------------------------------------------------------------------- Session.install
def test_cached_blob_changed_since_verified_is_refused_removed_and_fetched_again(tmp_path: Path) -> None:
    settings = windows_settings(tmp_path)
    pins = windows_mirror(tmp_path / "mirror", {k: str(v) for k, v in settings.pins.versions.items()})
    settings = windows_settings(tmp_path, mirror=tmp_path / "mirror", pins=pins)
    host = FakeWindowsHost(HostState())
    session = windows_session(host, settings, cache=tmp_path / "cache")
    session.prefetch()  # everything verified into the cache
    cache = Cache(tmp_path / "cache")
    install = next(a for a in session.plan_step("containerd.install") if hasattr(a, "artifact"))
    blob = cache.get(install.artifact.sha256 or _published(cache, install.artifact))
    assert blob is not None and cache.digest(blob) == blob.name
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot in the cache
    blob.write_bytes(bytes(data))

    with pytest.raises(Exit) as info:
        run_setup(windows_session(FakeWindowsHost(HostState()), settings, cache=tmp_path / "cache"))
    message = str(info.value.message)
    assert message.startswith("containerd.install failed: ") and "does not match" in message, message
    assert "run again to download it" in message and "\n" not in message
    assert not blob.exists()
    exe = Path(tmp_path, "fs", "C", *PureWindowsPath(r"C:\Program Files\containerd\bin\containerd.exe").parts[1:])
    assert not exe.exists()

    run_setup(windows_session(FakeWindowsHost(HostState()), settings, cache=tmp_path / "cache"))  # downloaded again
    assert exe.exists() and blob.exists()


def _published(cache: Cache, artifact: object) -> str:
    from dockless.download import published_checksum

    published = published_checksum(artifact, cache)  # type: ignore[arg-type]
    assert published is not None
    return published.sha256
