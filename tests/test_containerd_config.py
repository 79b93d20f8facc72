"""containerd's config.toml as dockless renders it, loaded by REAL containerd binaries.

Issue 2 #5, issue 4 #3 and field cases C02, C03, C04, C06. The file is rendered through the
real code path (settings → plugin host → Session → ``plugins.containerd.render_config``) and
checked with ``containerd --config F config dump``: exit 0, no warnings, and the effective CNI
dirs / pause image / restrict_oom_score_adj are the ones dockless chose.

Binaries: Debian's containerd 1.6 (``/usr/bin/containerd``) for schema 2; containerd 2.x for
schema 3 from Debian unstable, unpacked (not installed) by ``tests/tools/fetch-containerd2.sh``
into /var/cache/dockless-test/containerd2, or any 2.x binary named by ``DOCKLESS_CONTAINERD2``.
"""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

import invoke
import pytest

from dockless.actions import Install, WriteFile
from dockless.namespace import load
from dockless.session import Session
from dockless.settings import SettingsError, load_settings
from dockless.versions import Version
from plugins.containerd import render_config, restrict_oom, schema_for, version

DEBIAN_CONTAINERD = Path("/usr/bin/containerd")
CONTAINERD2_CACHE = Path("/var/cache/dockless-test/containerd2/usr/bin/containerd")
FETCH = "tests/tools/fetch-containerd2.sh"
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
WIN_CNI_BIN = r"C:\Program Files\containerd\cni\bin"
WIN_CNI_CONF = r"C:\Program Files\containerd\cni\conf"


# -- real binaries ----------------------------------------------------------------------------------
@cache
def binary_version(binary: Path) -> tuple[int, int, int] | None:
    """``containerd --version`` → (major, minor, patch); Debian's ``1.6.20~ds1`` → (1, 6, 20)."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    m = re.search(r"\sv?(\d+)\.(\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def containerd1() -> tuple[Path, str]:
    if not DEBIAN_CONTAINERD.is_file():
        pytest.skip(f"{DEBIAN_CONTAINERD} is missing: apt-get install -y containerd (Debian's 1.6 loads schema 2)")
    v = binary_version(DEBIAN_CONTAINERD)
    if v is None or v[0] != 1:
        pytest.skip(f"{DEBIAN_CONTAINERD} is containerd {v}, not 1.x: cannot check schema 2")
    return DEBIAN_CONTAINERD, "%d.%d.%d" % v


def containerd2() -> tuple[Path, str]:
    given = os.environ.get("DOCKLESS_CONTAINERD2", "").strip()
    candidate = Path(given) if given else CONTAINERD2_CACHE
    if candidate.is_dir():
        candidate = candidate / "usr" / "bin" / "containerd"
    if not candidate.is_file():
        where = f"DOCKLESS_CONTAINERD2={given}" if given else str(CONTAINERD2_CACHE)
        pytest.skip(f"containerd 2.x not available ({where} missing): run `sh {FETCH}` "
                    f"(Debian unstable's package, unpacked, not installed) or set DOCKLESS_CONTAINERD2")
    v = binary_version(candidate)
    if v is None or v[0] != 2:
        pytest.skip(f"{candidate} is containerd {v}, not 2.x")
    if schema_for(Version(*v)) != 3:
        pytest.skip(f"{candidate} is containerd {'%d.%d.%d' % v}: these checks are for schema 3 (2.0-2.2)")
    return candidate, "%d.%d.%d" % v


def config_dump(binary: Path, config: Path) -> dict[str, Any]:
    """``containerd --config F config dump``: must exit 0 and warn about nothing."""
    proc = subprocess.run([str(binary), "--config", str(config), "config", "dump"],
                          capture_output=True, text=True, timeout=60)
    shown = f"{binary} --config {config} config dump → {proc.returncode}\n{config.read_text()}\n--- stderr ---\n{proc.stderr}"
    assert proc.returncode == 0, shown
    noisy = [line for line in proc.stderr.splitlines()
             if re.search(r"level=(warn|warning|error|fatal)|unknown|ignoring", line, re.IGNORECASE)]
    assert not noisy, shown
    return tomllib.loads(proc.stdout)


# -- sessions through the real code path --------------------------------------------------------------
def make_session(tmp: Path, target: str, containerd: str | None = None, toml: str = "", *,
                 root: Path | None = None, fs_root: Path | None = None, dry: bool = True,
                 force: bool = False) -> Session:
    cfg = tmp / "dockless.toml"
    cfg.write_text(toml + ("\n[versions]\ncontainerd = \"%s\"\n" % containerd if containerd else ""), encoding="utf-8")
    env = {"DOCKLESS_TARGET": target, "DOCKLESS_CONFIG": str(cfg)}
    if target == "linux":
        env.update(DOCKLESS_ROOT=str(root or tmp / "root"), DOCKLESS_SERVICE="process")
    settings = load_settings(environ=env, cwd=tmp)
    if fs_root is not None:
        settings = dataclasses.replace(settings, fs_root=fs_root)
    if force:
        settings = settings.with_flags(force=True)
    settings, registry, _pm = load(settings, entry_points=False)
    return Session(invoke.MockContext(), settings, registry, dry=dry)


def write_rendered(session: Session, tmp: Path) -> tuple[bytes, Path]:
    content = render_config(session)
    path = tmp / "config.toml"
    path.write_bytes(content)
    return content, path


def effective(dump: dict[str, Any], binary_version_: tuple[int, int, int]) -> dict[str, Any]:
    """What containerd will really use: CNI dirs, pause image, restrict_oom_score_adj, paths."""
    plugins = dump["plugins"]
    common = {"root": dump["root"], "state": dump["state"], "address": dump["grpc"]["address"]}
    if binary_version_[0] < 2:
        cri = plugins["io.containerd.grpc.v1.cri"]
        return common | {"bin_dirs": [cri["cni"]["bin_dir"]], "conf_dir": cri["cni"]["conf_dir"],
                         "sandbox": cri["sandbox_image"], "restrict_oom": cri["restrict_oom_score_adj"]}
    runtime = plugins["io.containerd.cri.v1.runtime"]
    cni = runtime["cni"]
    bins = cni["bin_dirs"] if binary_version_[:2] >= (2, 1) else [cni["bin_dir"]]
    return common | {"bin_dirs": bins, "conf_dir": cni["conf_dir"],
                     "sandbox": plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"],
                     "restrict_oom": runtime["restrict_oom_score_adj"]}


def chosen(session: Session) -> dict[str, Any]:
    """What dockless chose (layout + settings): the dump must say exactly this."""
    lay = session.layout
    return {"root": str(lay.containerd_root), "state": str(lay.containerd_state), "address": lay.address,
            "bin_dirs": [str(lay.cni_bin_dir)], "conf_dir": str(lay.cni_conf_dir),
            "sandbox": session.config("containerd")["sandbox_image"], "restrict_oom": restrict_oom(session)}


def leaves(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += leaves(value, prefix + (key,))
        else:
            out.append((prefix + (key,), value))
    return out


def assert_every_key_known(rendered: bytes, dump: dict[str, Any]) -> None:
    """Every key dockless wrote is in the effective config with the same value: containerd 1.x
    drops unknown keys silently (no warning), so this is how a wrong key shows there."""
    for path, value in leaves(tomllib.loads(rendered.decode("utf-8"))):
        node: Any = dump
        for part in path:
            assert isinstance(node, dict) and part in node, f"{'.'.join(path)} is not a key containerd knows"
            node = node[part]
        assert node == value, f"{'.'.join(path)}: wrote {value!r}, containerd uses {node!r}"


OOM = "[containerd]\nrestrict_oom_score_adj = true\n"


# -- schema 2: Debian's containerd 1.6 ------------------------------------------------------------------
@pytest.mark.parametrize("pin", ["1.6.20", "1.7.34"])
@pytest.mark.parametrize("target,extra", [("linux", ""), ("linux", OOM), ("windows", "")],
                         ids=["linux", "linux-restrict-oom", "windows"])
def test_schema2_loads_in_debian_containerd(tmp_path: Path, pin: str, target: str, extra: str) -> None:
    binary, _v = containerd1()
    session = make_session(tmp_path, target, pin, extra)
    rendered, path = write_rendered(session, tmp_path)
    assert tomllib.loads(rendered.decode())["version"] == 2
    dump = config_dump(binary, path)
    assert effective(dump, binary_version(binary)) == chosen(session)
    assert_every_key_known(rendered, dump)
    if extra:
        assert dump["plugins"]["io.containerd.grpc.v1.cri"]["restrict_oom_score_adj"] is True


# -- schema 3: containerd 2.x from Debian unstable ---------------------------------------------------------
@pytest.mark.parametrize("target,extra", [("linux", ""), ("linux", OOM), ("windows", "")],
                         ids=["linux", "linux-restrict-oom", "windows"])
def test_schema3_loads_in_containerd2(tmp_path: Path, target: str, extra: str) -> None:
    binary, pin = containerd2()  # pinned to the binary's own 2.x version (2.1.x → bin_dirs)
    session = make_session(tmp_path, target, pin, extra)
    rendered, path = write_rendered(session, tmp_path)
    text = tomllib.loads(rendered.decode())
    assert text["version"] == 3
    cni = text["plugins"]["io.containerd.cri.v1.runtime"]["cni"]
    assert ("bin_dirs" in cni) == (binary_version(binary)[:2] >= (2, 1)) and ("bin_dir" in cni) != ("bin_dirs" in cni)
    dump = config_dump(binary, path)
    assert dump["version"] == 3
    assert effective(dump, binary_version(binary)) == chosen(session)
    assert_every_key_known(rendered, dump)
    if extra:  # 2.x: restrict_oom_score_adj lives in the runtime plugin, not in the images one
        assert dump["plugins"]["io.containerd.cri.v1.runtime"]["restrict_oom_score_adj"] is True


# -- linux lane's own file: the dirs in the effective config are where dockless installs --------------------
def test_linux_config_dirs_are_the_install_destinations(tmp_path: Path) -> None:
    binary, pin = containerd1()
    session = make_session(tmp_path, "linux", pin)
    entries = {e.task: e for e in session.plan()}
    install = [a for a in entries["cni.install"].actions if isinstance(a, Install)]
    conf = [a for a in entries["cni.config"].actions if isinstance(a, WriteFile)]
    config = [a for a in entries["containerd.config"].actions if isinstance(a, WriteFile)]
    assert install and conf and config
    path = tmp_path / "config.toml"
    path.write_bytes(config[0].content)
    got = effective(config_dump(binary, path), binary_version(binary))
    assert got["bin_dirs"] == [str(install[0].dest)]
    assert got["conf_dir"] == str(conf[0].path.parent)
    assert got["bin_dirs"][0].startswith(str(tmp_path / "root"))


# -- C02: encodings ------------------------------------------------------------------------------------
ENCODINGS = {
    "utf16le-bom": (lambda text: b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le"), "UTF-16LE"),
    "utf8-bom": (lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"), "UTF-8 with BOM"),
}


def c02_session(tmp: Path, target: str, force: bool = False) -> Session:
    kw: dict[str, Any] = {"force": force, "dry": False}
    if target == "windows":
        kw["fs_root"] = tmp / "fs"  # the Windows paths mapped onto a folder: real writes, no PowerShell
    return make_session(tmp, target, "1.7.34" if target == "linux" else "2.1.9", **kw)


def config_file(session: Session) -> Path:
    return session.local(session.layout.containerd_config)


@pytest.mark.parametrize("target", ["linux", "windows"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_c02_foreign_bom_config_fails_with_one_line_naming_the_encoding(tmp_path: Path, target: str, encoding: str) -> None:
    session = c02_session(tmp_path, target)
    encode, name = ENCODINGS[encoding]
    file = config_file(session)
    file.parent.mkdir(parents=True, exist_ok=True)
    original = encode(render_config(session).decode())
    file.write_bytes(original)
    with pytest.raises(invoke.Exit) as failed:
        session.run_step("containerd.config")
    message = str(failed.value.message)
    assert "\n" not in message.strip()
    assert name in message and str(session.layout.containerd_config) in message and "--force" in message
    assert file.read_bytes() == original  # not touched without consent
    assert "containerd.service" not in [r.step for r in session.results]


@pytest.mark.parametrize("target", ["linux", "windows"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_c02_with_force_rewrites_utf8_without_bom_and_keeps_a_backup(tmp_path: Path, target: str, encoding: str) -> None:
    session = c02_session(tmp_path, target, force=True)
    encode, _name = ENCODINGS[encoding]
    file = config_file(session)
    file.parent.mkdir(parents=True, exist_ok=True)
    original = encode("version = 2\n")
    file.write_bytes(original)
    assert session.run_step("containerd.config").status == "changed"
    assert file.read_bytes() == render_config(session)
    assert not file.read_bytes().startswith(BOMS)
    backups = list(file.parent.glob("config.toml.*.bak"))
    assert [b.read_bytes() for b in backups] == [original]


@pytest.mark.parametrize("target", ["linux", "windows"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_c02_owned_file_resaved_with_bom_is_rewritten_as_utf8(tmp_path: Path, target: str, encoding: str) -> None:
    session = c02_session(tmp_path, target)
    assert session.run_step("containerd.config").status == "changed"
    session.release()
    file = config_file(session)
    written = file.read_bytes()
    encode, _name = ENCODINGS[encoding]
    file.write_bytes(encode(written.decode()))  # what Notepad / Set-Content make of it
    again = c02_session(tmp_path, target)  # a new run, no --force
    assert again.run_step("containerd.config").status == "changed"
    assert file.read_bytes() == written and not written.startswith(BOMS)
    assert not list(file.parent.glob("config.toml.*.bak"))


@pytest.mark.parametrize("target", ["linux", "windows"])
@pytest.mark.parametrize("pin", ["1.7.34", "2.0.5", "2.1.9", "2.2.7", "2.3.4"])
def test_c02_dockless_never_writes_a_bom(tmp_path: Path, target: str, pin: str) -> None:
    session = make_session(tmp_path, target, pin)
    for entry in session.plan():
        for action in entry.actions:
            if isinstance(action, WriteFile):
                assert not action.content.startswith(BOMS), action.path
                action.content.decode("utf-8")  # strict UTF-8
                assert b"\x00" not in action.content


# -- C03: schema per pinned major ---------------------------------------------------------------------
@pytest.mark.parametrize("target", ["linux", "windows"])
@pytest.mark.parametrize("pin,schema,cni_key", [
    ("1.6.20", 2, "bin_dir"), ("v1.7.34", 2, "bin_dir"), ("2.0.5", 3, "bin_dir"),
    ("2.1.9", 3, "bin_dirs"), ("2.2.7", 3, "bin_dirs"), ("2.3.4", 4, "bin_dirs"),
])
def test_c03_rendered_schema_follows_the_pinned_major(tmp_path: Path, target: str, pin: str, schema: int, cni_key: str) -> None:
    session = make_session(tmp_path, target, pin)
    data = tomllib.loads(render_config(session).decode())
    assert data["version"] == schema
    plugins = data["plugins"]
    if schema == 2:
        assert set(plugins) <= {"io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"}
        cni = plugins["io.containerd.grpc.v1.cri"]["cni"]
    else:
        assert "io.containerd.grpc.v1.cri" not in plugins
        cni = plugins["io.containerd.cri.v1.runtime"]["cni"]
        assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == session.config("containerd")["sandbox_image"]
    assert cni_key in cni and ({"bin_dir", "bin_dirs"} - {cni_key}).isdisjoint(cni)


USER_FILES = {
    "v2-for-2.x": ("2.1.9", 'version = 2\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/opt/cni/bin"\n', 2, 3),
    "v3-for-1.7": ("1.7.34", "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.cni]\n  bin_dirs = ['/opt/cni/bin']\n", 3, 2),
    "v3-for-2.3": ("2.3.4", "version = 3\n", 3, 4),
    "no-version-for-2.x": ("2.1.9", "[grpc]\n  address = '/run/containerd/containerd.sock'\n", 1, 3),
}


@pytest.mark.parametrize("case", list(USER_FILES))
def test_c03_kept_user_file_with_another_schema_is_refused_before_the_service(tmp_path: Path, case: str) -> None:
    pin, content, declared, wanted = USER_FILES[case]
    session = make_session(tmp_path, "linux", pin, dry=False)
    file = config_file(session)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(content, encoding="utf-8")
    steps = list(session.steps)
    assert steps.index("containerd.config") < steps.index("containerd.service")
    with pytest.raises(invoke.Exit) as failed:
        session.run_step("containerd.config")
    message = str(failed.value.message).strip()
    assert "\n" not in message
    assert f"version = {declared}" in message and f"containerd {pin}" in message and f"schema {wanted}" in message
    assert file.read_text(encoding="utf-8") == content
    assert [r.step for r in session.results] == ["containerd.config"]
    # `plan` says so too: the step is shown as blocked, with the same reason, and planning goes on
    entries = make_session(tmp_path, "linux", pin).plan()
    blocked = [e for e in entries if e.blocked]
    assert blocked[0].task == "containerd.config" and f"version = {declared}" in blocked[0].blocked
    # and containerd.service: the file names no root/state under DOCKLESS_ROOT (containerd's defaults)
    assert [e.task for e in blocked[1:]] == ["containerd.service"] and "outside dockless's layout" in blocked[1].blocked
    assert entries[-1].task != "containerd.config"  # the steps after it were planned


def test_c03_kept_user_file_with_the_right_schema_is_kept_with_a_warning(tmp_path: Path) -> None:
    session = make_session(tmp_path, "linux", "2.1.9", dry=False)
    file = config_file(session)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("version = 3\n", encoding="utf-8")
    assert session.run_step("containerd.config").status == "warning"
    assert file.read_text(encoding="utf-8") == "version = 3\n"


def test_c03_force_replaces_a_file_of_another_schema(tmp_path: Path) -> None:
    session = make_session(tmp_path, "linux", "2.1.9", dry=False, force=True)
    file = config_file(session)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n', encoding="utf-8")
    assert session.run_step("containerd.config").status == "changed"
    assert tomllib.loads(file.read_text(encoding="utf-8"))["version"] == 3


# -- C04: Windows paths in TOML ----------------------------------------------------------------------
@pytest.mark.parametrize("pin", ["1.7.34", "2.1.9", "2.3.4"])
def test_c04_windows_paths_parse_as_written(tmp_path: Path, pin: str) -> None:
    session = make_session(tmp_path, "windows", pin)
    text = render_config(session).decode()
    assert '"C:\\' not in text  # no Windows path in a basic string (an invalid escape there)
    assert f"'{WIN_CNI_BIN}'" in text
    data = tomllib.loads(text)
    cri = data["plugins"]["io.containerd.grpc.v1.cri"] if data["version"] == 2 else data["plugins"]["io.containerd.cri.v1.runtime"]
    bins = cri["cni"].get("bin_dirs") or [cri["cni"]["bin_dir"]]
    assert bins == [WIN_CNI_BIN] and cri["cni"]["conf_dir"] == WIN_CNI_CONF
    assert data["grpc"]["address"] == r"\\.\pipe\containerd-containerd"
    assert data["root"] == r"C:\ProgramData\containerd\root"


@pytest.mark.parametrize("which", ["containerd1", "containerd2"])
@pytest.mark.parametrize("install_dir", [None, r"D:\Tools\O'Brien's containerd"], ids=["default", "quote-in-path"])
def test_c04_windows_paths_load_in_real_containerd(tmp_path: Path, which: str, install_dir: str | None) -> None:
    binary, pin = containerd1() if which == "containerd1" else containerd2()
    if which == "containerd1":
        pin = "1.7.34"  # the 1.7 line renders schema 2 like Debian's 1.6
    toml = f"[paths]\ninstall_dir = {quoted(install_dir)}\n" if install_dir else ""
    session = make_session(tmp_path, "windows", pin, toml)
    rendered, path = write_rendered(session, tmp_path)
    got = effective(config_dump(binary, path), binary_version(binary))
    assert got == chosen(session)
    base = install_dir or r"C:\Program Files\containerd"
    assert got["bin_dirs"] == [base + r"\cni\bin"] and got["conf_dir"] == base + r"\cni\conf"


def quoted(value: str) -> str:
    """A TOML string for ``value`` as a user would write it in dockless.toml."""
    return f"'{value}'" if "'" not in value else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- C06: one source of truth for the CNI dirs -----------------------------------------------------------
C06 = {
    "windows-1.7": ("windows", "1.7.34", r"C:\opt\cni\bin", "containerd1"),
    "windows-2.x": ("windows", None, r"C:\opt\cni\bin", "containerd2"),
    "linux-1.7": ("linux", "1.7.34", None, "containerd1"),
}


@pytest.mark.parametrize("case", list(C06))
def test_c06_paths_cni_bin_dir_moves_install_and_config_together(tmp_path: Path, case: str) -> None:
    target, pin, bin_dir, which = C06[case]
    binary, real_pin = containerd1() if which == "containerd1" else containerd2()
    bin_dir = bin_dir or str(tmp_path / "elsewhere" / "cni" / "bin")
    session = make_session(tmp_path, target, pin or real_pin, f"[paths]\ncni_bin_dir = {quoted(bin_dir)}\n")
    wanted: PurePath = (PureWindowsPath if target == "windows" else PurePosixPath)(bin_dir)
    entries = {e.task: e for e in session.plan()}
    installs = [a for a in entries["cni.install"].actions if isinstance(a, Install)]
    assert [a.dest for a in installs] == [wanted]
    config = next(a for a in entries["containerd.config"].actions if isinstance(a, WriteFile))
    conf = next(a for a in entries["cni.config"].actions if isinstance(a, WriteFile))
    path = tmp_path / "config.toml"
    path.write_bytes(config.content)
    got = effective(config_dump(binary, path), binary_version(binary))
    assert got["bin_dirs"] == [str(wanted)] == [str(installs[0].dest)]
    assert got["conf_dir"] == str(conf.path.parent) == str(session.layout.cni_conf_dir)


def test_c06_a_cni_table_with_dirs_is_refused_and_points_to_paths(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"\[paths\] cni_bin_dir"):
        make_session(tmp_path, "windows", "1.7.34", "[cni]\nbin_dir = 'C:\\opt\\cni\\bin'\n")


def test_version_helper_matches_the_pins(tmp_path: Path) -> None:
    session = make_session(tmp_path, "linux", "v2.1.9")
    assert str(version(session)) == "2.1.9" and schema_for(version(session)) == 3
