"""Safe extraction: normal release layouts work, hostile archives are refused before any write."""
from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from dockless.archive import ArchiveError, MemberNotFound, UnsafeArchive, extract, raw_install

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and symlinks")


# ----------------------------------------------------------------------------- builders
def _tar_member(
    tf: tarfile.TarFile,
    name: str,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    type: bytes = tarfile.REGTYPE,  # noqa: A002
    linkname: str = "",
) -> None:
    ti = tarfile.TarInfo(name)
    ti.mode = mode
    ti.type = type
    ti.linkname = linkname
    ti.size = len(data) if type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    tf.addfile(ti, io.BytesIO(data) if ti.size else None)


def make_tar(path: Path, members: list[tuple], compression: str = "gz") -> Path:
    """members: (name, data) or (name, data, kwargs) tuples."""
    with tarfile.open(path, f"w:{compression}" if compression else "w", format=tarfile.GNU_FORMAT) as tf:
        for m in members:
            name, data, *rest = m
            _tar_member(tf, name, data, **(rest[0] if rest else {}))
    return path


def make_zip(path: Path, members: list[tuple[str, bytes] | tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for m in members:
            zi = zipfile.ZipInfo(m[0])
            if len(m) == 3:
                zi.external_attr = m[2] << 16
            zf.writestr(zi, m[1])
    return path


def tree(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)).replace(os.sep, "/") for p in root.rglob("*"))


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """A sandbox: archives are built in box/src, extracted to box/out/dest; box/out must stay empty."""
    (tmp_path / "src").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


def assert_untouched(box: Path) -> None:
    assert tree(box / "out") == []  # nothing inside the destination, nothing beside it
    assert not (box / "evil").exists() and not (box / "evil.txt").exists()


# ----------------------------------------------------------------------------- normal use
@posix_only
def test_containerd_layout_tar_gz(box: Path) -> None:
    arc = make_tar(
        box / "src" / "containerd-1.7.20-linux-amd64.tar.gz",
        [
            ("./bin/", b"", {"type": tarfile.DIRTYPE, "mode": 0o755}),
            ("./bin/containerd", b"ELF-containerd", {"mode": 0o755}),
            ("./bin/ctr", b"ELF-ctr", {"mode": 0o755}),
            ("./README.md", b"docs", {"mode": 0o644}),
        ],
    )
    dest = box / "out" / "dest"
    written = extract(arc, dest)
    assert tree(dest) == ["README.md", "bin", "bin/containerd", "bin/ctr"]
    assert sorted(p.relative_to(dest).as_posix() for p in written) == ["README.md", "bin/containerd", "bin/ctr"]
    assert (dest / "bin" / "ctr").read_bytes() == b"ELF-ctr"
    assert stat.S_IMODE((dest / "bin" / "containerd").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "README.md").stat().st_mode) == 0o644


def test_members_and_flatten(box: Path) -> None:
    arc = make_tar(
        box / "src" / "c.tgz",
        [("bin/containerd.exe", b"a", {"mode": 0o755}), ("bin/ctr.exe", b"b", {"mode": 0o755}), ("x.txt", b"x")],
    )
    dest = box / "out" / "pf"
    written = extract(arc, dest, ["./bin/containerd.exe", "bin/ctr.exe"], flatten=True)
    assert tree(dest) == ["containerd.exe", "ctr.exe"]
    assert {p.name for p in written} == {"containerd.exe", "ctr.exe"}


def test_directory_member_selects_subtree(box: Path) -> None:
    arc = make_tar(box / "src" / "c.tar", [("bin/a", b"a"), ("bin/b", b"b"), ("doc/x", b"x")], compression="")
    dest = box / "out" / "d"
    extract(arc, dest, ["bin"], flatten=True)
    assert tree(dest) == ["a", "b"]


def test_missing_member_is_named(box: Path) -> None:
    arc = make_tar(box / "src" / "c.tgz", [("bin/containerd", b"a")])
    with pytest.raises(MemberNotFound, match=r"bin/ctr"):
        extract(arc, box / "out" / "d", ["bin/containerd", "bin/ctr"])
    assert_untouched(box)


def test_flat_zip_cni(box: Path) -> None:
    arc = make_zip(
        box / "src" / "windows-container-networking-cni-amd64-v0.3.1.zip",
        [("nat.exe", b"MZnat"), ("sdnbridge.exe", b"MZb"), ("sdnoverlay.exe", b"MZo")],
    )
    dest = box / "out" / "cni"
    written = extract(arc, dest)
    assert tree(dest) == ["nat.exe", "sdnbridge.exe", "sdnoverlay.exe"]
    assert len(written) == 3 and (dest / "nat.exe").read_bytes() == b"MZnat"


@posix_only
def test_zip_exec_bit_kept(box: Path) -> None:
    arc = make_zip(box / "src" / "t.zip", [("tool", b"#!", 0o100755), ("data", b"d", 0o100644)])
    dest = box / "out" / "d"
    extract(arc, dest)
    assert stat.S_IMODE((dest / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "data").stat().st_mode) == 0o644


def test_format_detected_by_content_not_suffix(box: Path) -> None:
    tgz = make_tar(box / "src" / "blob-without-suffix", [("a", b"1")])
    z = make_zip(box / "src" / "misnamed.tar.gz", [("b", b"2")])
    dest = box / "out" / "d"
    extract(tgz, dest)
    extract(z, dest)
    assert tree(dest) == ["a", "b"]


def test_not_an_archive(box: Path) -> None:
    junk = box / "src" / "junk.tgz"
    junk.write_bytes(os.urandom(2048))
    with pytest.raises(ArchiveError):
        extract(junk, box / "out" / "d")
    assert_untouched(box)


def test_overwrite_is_atomic_and_leaves_no_temp_files(box: Path) -> None:
    dest = box / "out" / "d"
    extract(make_tar(box / "src" / "v1.tgz", [("bin/tool", b"v1")]), dest)
    extract(make_tar(box / "src" / "v2.tgz", [("bin/tool", b"v2")]), dest)
    assert (dest / "bin" / "tool").read_bytes() == b"v2"
    assert tree(dest) == ["bin", "bin/tool"]


@posix_only
def test_safe_symlink_and_hardlink(box: Path) -> None:
    arc = make_tar(
        box / "src" / "links.tgz",
        [
            ("bin/tool", b"T", {"mode": 0o755}),
            ("tool", b"", {"type": tarfile.SYMTYPE, "linkname": "bin/tool"}),
            ("bin/alias", b"", {"type": tarfile.LNKTYPE, "linkname": "bin/tool"}),
        ],
    )
    dest = box / "out" / "d"
    extract(arc, dest)
    assert os.readlink(dest / "tool") == "bin/tool"
    assert (dest / "bin" / "alias").read_bytes() == b"T"
    flat = box / "out" / "flat"
    extract(arc, flat, flatten=True, members=["tool", "bin/alias"])
    assert tree(flat) == ["alias", "tool"]
    assert not (flat / "tool").is_symlink() and (flat / "tool").read_bytes() == b"T"


def test_raw_install(box: Path) -> None:
    src = box / "src" / "runc.amd64"
    src.write_bytes(b"ELF-runc")
    dest = box / "out" / "bin" / "runc"
    assert raw_install(src, dest) == dest
    raw_install(src, dest)  # overwrite is fine
    assert dest.read_bytes() == b"ELF-runc"
    assert tree(box / "out") == ["bin", "bin/runc"]
    if sys.platform != "win32":
        assert stat.S_IMODE(dest.stat().st_mode) == 0o755


# ----------------------------------------------------------------------------- hostile archives
OK = ("ok.txt", b"benign file placed before the bad member")

HOSTILE_TARS = {
    "dotdot": [OK, ("../evil.txt", b"x")],
    "dotdot-nested": [OK, ("a/../../evil.txt", b"x")],
    "absolute": [OK, ("/tmp/dockless-evil.txt", b"x")],
    "windows-drive": [OK, ("C:\\Windows\\evil.txt", b"x")],
    "backslash-absolute": [OK, ("\\evil.txt", b"x")],
    "backslash-dotdot": [OK, ("..\\evil.txt", b"x")],
    "symlink-absolute": [OK, ("link", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc"})],
    "symlink-dotdot": [OK, ("sub/link", b"", {"type": tarfile.SYMTYPE, "linkname": "../../evil"})],
    "write-through-symlink": [
        OK,
        ("here", b"", {"type": tarfile.SYMTYPE, "linkname": "."}),
        ("here/x", b"x"),
    ],
    "symlink-chain": [  # lexically "a/.." is inside, but a -> . so a/.. is the parent of dest
        OK,
        ("a", b"", {"type": tarfile.SYMTYPE, "linkname": "."}),
        ("c", b"", {"type": tarfile.SYMTYPE, "linkname": "a/.."}),
    ],
    "hardlink-dotdot": [OK, ("h", b"", {"type": tarfile.LNKTYPE, "linkname": "../../../etc/passwd"})],
    "hardlink-absolute": [OK, ("h", b"", {"type": tarfile.LNKTYPE, "linkname": "/etc/passwd"})],
    "hardlink-not-in-archive": [OK, ("h", b"", {"type": tarfile.LNKTYPE, "linkname": "etc/passwd"})],
    "char-device": [OK, ("null", b"", {"type": tarfile.CHRTYPE})],
    "block-device": [OK, ("sda", b"", {"type": tarfile.BLKTYPE})],
    "fifo": [OK, ("pipe", b"", {"type": tarfile.FIFOTYPE})],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_hostile_tar_refused_before_any_write(box: Path, case: str) -> None:
    arc = make_tar(box / "src" / f"{case}.tar.gz", HOSTILE_TARS[case])
    with pytest.raises(UnsafeArchive) as ei:
        extract(arc, box / "out" / "dest")
    msg = str(ei.value)
    assert str(arc) in msg and "\n" not in msg
    assert_untouched(box)


def test_hostile_member_named_in_message(box: Path) -> None:
    arc = make_tar(box / "src" / "t.tgz", [OK, ("../evil.txt", b"x")])
    with pytest.raises(UnsafeArchive, match=r"\.\./evil\.txt"):
        extract(arc, box / "out" / "dest", members=["ok.txt"])  # scanned even when not selected
    assert_untouched(box)


HOSTILE_ZIPS = {
    "zip-dotdot": [OK, ("../evil.txt", b"x")],
    "zip-absolute": [OK, ("/evil.txt", b"x")],
    "zip-backslash-dotdot": [OK, ("..\\..\\evil.txt", b"x")],
    "zip-drive": [OK, ("C:/evil.txt", b"x")],
    "zip-symlink-escape": [OK, ("link", b"../../evil", 0o120777)],
    "zip-fifo": [OK, ("pipe", b"", 0o010644)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ZIPS))
def test_hostile_zip_refused_before_any_write(box: Path, case: str) -> None:
    arc = make_zip(box / "src" / f"{case}.zip", HOSTILE_ZIPS[case])  # type: ignore[arg-type]
    with pytest.raises(UnsafeArchive) as ei:
        extract(arc, box / "out" / "dest")
    assert str(arc) in str(ei.value)
    assert_untouched(box)


@posix_only
def test_preexisting_symlink_in_destination_not_followed_outside(box: Path) -> None:
    outside = box / "elsewhere"
    outside.mkdir()
    dest = box / "out" / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    arc = make_tar(box / "src" / "t.tgz", [("sub/x", b"x")])
    with pytest.raises(UnsafeArchive):
        extract(arc, dest)
    assert list(outside.iterdir()) == []
