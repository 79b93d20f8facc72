"""Bad settings input is ONE line naming the input and the fix, a non-zero exit, no traceback and
no change on disk — for every kind of value: dockless.toml's top-level values and tables, the
component tables (``Setting(kind=..., check=...)``), ``[host]``, ``[paths]``, ``[unverified]``,
the ``DOCKLESS_*`` variables and versions.toml.

Each bad input is tried through ``load_settings(environ, cwd)`` or, for what needs the installed
components, through the ``Session`` that ``plan`` and ``setup`` build; a few go through
``invoke plan`` as a subprocess.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke import MockContext

from dockless.manager import collect, plugin_manager
from dockless.model import Setting, at_least, cidr_list, image_reference, interface_name, ipv4_network
from dockless.registry import PluginError
from dockless.session import Session
from dockless.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, toml: str) -> Path:
    cfg = tmp_path / "dockless.toml"
    cfg.write_text(toml, encoding="utf-8")
    return cfg


def settings_for(tmp_path: Path, toml: str = "", env: dict[str, str] | None = None) -> Any:
    write(tmp_path, toml)
    return load_settings(dict(env or {}), cwd=tmp_path)


def session_for(tmp_path: Path, toml: str = "", env: dict[str, str] | None = None, target: str = "windows") -> Session:
    """What ``invoke plan --target <target>`` builds (a Linux target gets a private root)."""
    env = {"DOCKLESS_ROOT": str(tmp_path / "root")} if target == "linux" else {}
    settings = settings_for(tmp_path, toml, env).with_flags(target=target)
    return Session(MockContext(), settings, collect(plugin_manager(entry_points=False)), dry=True)


def one_line(exc: pytest.ExceptionInfo[BaseException], *fragments: str) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- dockless.toml and the environment, refused by load_settings ------------------------------------------------
LOAD_CASES = [
    # (id, dockless.toml, environment, fragments the one line must hold)
    ("mirror-not-a-string", "mirror = 5\n", {}, ["mirror = 5 in dockless.toml", "must be a string"]),
    ("root-not-a-string", "root = 5\n", {}, ["root = 5 in dockless.toml", "must be a string"]),
    ("target-not-a-string", "target = 5\n", {}, ["target = 5", "must be a string"]),
    ("cni-not-a-string", "cni = true\n", {}, ["cni = True", "must be a string"]),
    ("disable-plugins-number", "disable_plugins = 5\n", {}, ["disable_plugins = 5", "list of plugin names"]),
    ("disable-plugins-numbers", "disable_plugins = [1]\n", {}, ["disable_plugins = [1]", "list of plugin names"]),
    ("versions-not-a-table", 'versions = "x"\n', {}, ["versions = 'x'", "must be a table", "[versions]"]),
    ("host-not-a-table", 'host = "x"\n', {}, ["host = 'x'", "must be a table", "[host]"]),
    ("paths-not-a-table", 'paths = "x"\n', {}, ["paths = 'x'", "must be a table"]),
    ("sha256-not-a-table", 'sha256 = "x"\n', {}, ["sha256 = 'x'", "must be a table"]),
    ("cni-as-table", "[cni]\nbin_dir = '/opt/cni/bin'\n", {}, ["[cni] is not a table", "[paths] cni_bin_dir"]),
    ("dashed-and-underscored-table", "[cni-bridge]\nbridge = 'a'\n[cni_bridge]\nnetwork = 'b'\n", {},
     ["[cni-bridge] and [cni_bridge] are the same table"]),
    ("paths-number", "[paths]\ncni_bin_dir = 5\n", {}, ["[paths] cni_bin_dir = 5", "must be a path string"]),
    ("paths-unknown", "[paths]\ncni_bin = 'C:\\\\x'\n", {}, ["[paths] 'cni_bin' is unknown", "did you mean 'cni_bin_dir'?"]),
    ("unverified-typo", '[unverified]\nalow = ["x.tgz"]\n', {}, ["[unverified] 'alow' is unknown", "did you mean 'allow'?"]),
    ("unverified-string", '[unverified]\nallow = "x.tgz"\n', {}, ["[unverified] allow = 'x.tgz'", 'allow = ["x.tgz"]']),
    ("unverified-url", '[unverified]\nallow = ["https://x/y.tgz"]\n', {}, ["[unverified] allow lists", "file name"]),
    ("sha256-top-level-bad-digest", '[sha256]\n"x.tgz" = "abc"\n', {}, ["'x.tgz'", "64 hex"]),
    ("host-build-word", "[host]\nwindows_build = 'abc'\n", {}, ["[host] windows_build = 'abc'", "whole number", "windows_build = 20348"]),
    ("host-build-old", "[host]\nwindows_build = 9200\n", {}, ["[host] windows_build = 9200", "14393", "17763", "20348"]),
    ("host-build-bool", "[host]\nwindows_build = true\n", {}, ["[host] windows_build = True", "whole number"]),
    ("host-ubr-word", "[host]\nwindows_ubr = 'x'\n", {}, ["[host] windows_ubr = 'x'", "whole number"]),
    ("host-ubr-negative", "[host]\nwindows_ubr = -1\n", {}, ["[host] windows_ubr = -1", "at least 0"]),
    ("host-edition", "[host]\nedition = 'pro'\n", {}, ["[host] edition = 'pro'", "client, server"]),
    ("host-profile-posix", "[host]\nuser_profile = '/home/me'\n", {}, ["[host] user_profile = '/home/me'", "absolute Windows path"]),
    ("host-profile-relative", "[host]\nuser_profile = 'Users\\\\me'\n", {}, ["[host] user_profile", "absolute Windows path"]),
    ("host-interfaces", "[host]\ninterfaces = 'x'\n", {}, ["[host] interfaces = 'x'", "list of tables"]),
    ("host-unknown", "[host]\nwindows_bild = 1\n", {}, ["[host] 'windows_bild' is unknown", "did you mean 'windows_build'?"]),
    ("root-relative-in-file", "root = 'relative'\n", {"DOCKLESS_TARGET": sys.platform == "win32" and "windows" or "linux"},
     ["root = 'relative' in dockless.toml", "absolute"]),
    ("root-empty-in-file", "root = ''\n", {}, ["root = '' in dockless.toml", "absolute path"]),
    ("root-set-but-empty", "", {"DOCKLESS_ROOT": ""}, ["DOCKLESS_ROOT is set but empty", "set it to an absolute path or unset it"]),
    ("root-relative-env", "", {"DOCKLESS_ROOT": "relative", "DOCKLESS_TARGET": sys.platform == "win32" and "windows" or "linux"},
     ["DOCKLESS_ROOT='relative'", "absolute"]),
    ("force-word", "", {"DOCKLESS_FORCE": "maybe"}, ["DOCKLESS_FORCE='maybe'", "1, true or yes"]),
    ("mirror-missing-folder", "", {"DOCKLESS_MIRROR": "/nonexistent/mirror"}, ["DOCKLESS_MIRROR='/nonexistent/mirror'", "does not exist"]),
    ("mirror-missing-file-url", "", {"DOCKLESS_MIRROR": "file:///nonexistent/mirror"}, ["DOCKLESS_MIRROR='file:///nonexistent/mirror'", "does not exist"]),
    ("mirror-scheme", "", {"DOCKLESS_MIRROR": "ftp://mirror.example.com"}, ["DOCKLESS_MIRROR='ftp://mirror.example.com'", "ftp:// is not supported"]),
    ("mirror-no-host", "", {"DOCKLESS_MIRROR": "https://"}, ["DOCKLESS_MIRROR='https://'", "no host name"]),
    ("mirror-in-file-missing", "mirror = 'no-such-folder'\n", {}, ["mirror = 'no-such-folder' in dockless.toml", "does not exist"]),
    ("versions-missing-file", "", {"DOCKLESS_VERSIONS": "/nonexistent/versions.toml"}, ["DOCKLESS_VERSIONS=/nonexistent/versions.toml", "no such file"]),
    ("config-missing-file", "", {"DOCKLESS_CONFIG": "/nonexistent/dockless.toml"}, ["DOCKLESS_CONFIG=/nonexistent/dockless.toml", "no such file"]),
    ("target-word", "", {"DOCKLESS_TARGET": "macos"}, ["DOCKLESS_TARGET='macos'", "windows, linux"]),
    ("target-word-in-file", "target = 'macos'\n", {}, ["target = 'macos' in dockless.toml", "windows, linux"]),
    ("service-word", "", {"DOCKLESS_SERVICE": "launchd"}, ["DOCKLESS_SERVICE='launchd'", "windows-service, systemd, process"]),
]


@pytest.mark.parametrize(("toml", "env", "fragments"), [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_bad_input_is_one_line_at_load(tmp_path: Path, toml: str, env: dict[str, str], fragments: list[str]) -> None:
    write(tmp_path, toml)
    before = tree(tmp_path)
    with pytest.raises(SettingsError) as err:
        load_settings(env, cwd=tmp_path)
    one_line(err, *fragments)
    assert tree(tmp_path) == before


def test_config_that_is_a_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"DOCKLESS_CONFIG": str(tmp_path)}, cwd=tmp_path)
    one_line(err, f"DOCKLESS_CONFIG={tmp_path}", "is a folder")


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b"\xff\xfe"], ids=["utf-8-bom", "utf-16-bom"])
def test_versions_toml_with_a_bom_names_it(tmp_path: Path, bom: bytes) -> None:
    versions = tmp_path / "pins.toml"
    versions.write_bytes(bom + (REPO / "versions.toml").read_bytes())
    with pytest.raises(SettingsError) as err:
        settings_for(tmp_path, "", {"DOCKLESS_VERSIONS": str(versions)})
    one_line(err, str(versions), "byte-order mark", "UTF-8 without BOM")


def test_versions_toml_not_utf8_is_one_line(tmp_path: Path) -> None:
    versions = tmp_path / "pins.toml"
    versions.write_bytes(b'containerd = "1.7.20"\n# \xe9t\xe9\n')
    with pytest.raises(SettingsError) as err:
        settings_for(tmp_path, "", {"DOCKLESS_VERSIONS": str(versions)})
    one_line(err, str(versions), "UTF-8")


# -- what needs the components: refused when plan/setup build their Session -------------------------------------
SESSION_CASES = [
    # (id, dockless.toml, target, fragments)
    ("crictl-timeout-word", '[crictl]\ntimeout = "ten"\n', "windows", ["[crictl] timeout = 'ten'", "whole number"]),
    ("crictl-timeout-quoted-number", '[crictl]\ntimeout = "30"\n', "linux", ["[crictl] timeout = '30'", "timeout = 30"]),
    ("crictl-timeout-negative", "[crictl]\ntimeout = -5\n", "windows", ["[crictl] timeout = -5", "at least 0"]),
    ("crictl-timeout-bool", "[crictl]\ntimeout = true\n", "windows", ["[crictl] timeout = True", "whole number"]),
    ("bridge-subnet-host-bits", '[cni_bridge]\nsubnet = "10.88.0.1/16"\n', "linux", ["[cni_bridge] subnet = '10.88.0.1/16'", "10.88.0.0/16"]),
    ("bridge-subnet-word", '[cni_bridge]\nsubnet = "pods"\n', "linux", ["[cni_bridge] subnet = 'pods'", "IPv4 network"]),
    ("bridge-subnet-v6", '[cni_bridge]\nsubnet = "fd00::/64"\n', "linux", ["[cni_bridge] subnet = 'fd00::/64'", "IPv4"]),
    ("bridge-subnet-no-prefix", '[cni_bridge]\nsubnet = "10.88.0.0"\n', "linux", ["[cni_bridge] subnet = '10.88.0.0'", "prefix"]),
    ("bridge-name-long", '[cni_bridge]\nbridge = "dockless-bridge-0"\n', "linux", ["[cni_bridge] bridge = 'dockless-bridge-0'", "1 to 15"]),
    ("bridge-name-space", '[cni_bridge]\nbridge = "br 0"\n', "linux", ["[cni_bridge] bridge = 'br 0'", "interface name"]),
    ("bridge-network-number", "[cni_bridge]\nnetwork = 5\n", "linux", ["[cni_bridge] network = 5", "must be a string"]),
    ("bridge-network-empty", '[cni_bridge]\nnetwork = ""\n', "linux", ["[cni_bridge] network = ''", "must not be empty"]),
    ("dashed-table-checked-too", '[cni-bridge]\nsubnet = "x"\n', "linux", ["[cni_bridge] subnet = 'x'"]),
    ("hns-subnet-number", "[hns]\nsubnet = 10\n", "windows", ["[hns] subnet = 10", "must be a string"]),
    ("hns-gateway-list", '[hns]\ngateway = ["10.0.0.1"]\n', "windows", ["[hns] gateway = ['10.0.0.1']", "must be a string"]),
    ("nat-exceptions-string", '[cni_nat]\noutbound_nat_exceptions = "10.0.0.0/8"\n', "windows",
     ["[cni_nat] outbound_nat_exceptions = '10.0.0.0/8'", 'must be a list, such as outbound_nat_exceptions = ["10.0.0.0/8"]']),
    ("nat-exceptions-bad-cidr", '[cni_nat]\noutbound_nat_exceptions = ["10.0.0.1/8"]\n', "windows",
     ["[cni_nat] outbound_nat_exceptions", "'10.0.0.0/8'"]),
    ("nat-exceptions-word", '[cni_nat]\noutbound_nat_exceptions = ["intranet"]\n', "windows", ["[cni_nat] outbound_nat_exceptions", "'intranet'"]),
    ("pods-isolation", '[pods]\nisolation = "hyper-v"\n', "windows", ["[pods] isolation = 'hyper-v'", '"", process, hyperv']),
    ("pods-image", '[pods]\nlinux_image = "Not An Image"\n', "linux", ["[pods] linux_image = 'Not An Image'", "image reference"]),
    ("images-smoke-empty", '[images]\nsmoke_image = ""\n', "linux", ["[images] smoke_image = ''", "image reference"]),
    ("defender-enabled-number", "[defender]\nenabled = 1\n", "windows", ["[defender] enabled = 1", "true, false"]),
    ("defender-enabled-word", '[defender]\nenabled = "yes"\n', "windows", ["[defender] enabled = 'yes'", "true, false"]),
    ("containerd-log-level", '[containerd]\nlog_level = "verbose"\n', "windows", ["[containerd] log_level = 'verbose'", "trace, debug"]),
    ("containerd-sandbox-number", "[containerd]\nsandbox_image = 3\n", "windows", ["[containerd] sandbox_image = 3", "must be a string"]),
    ("unknown-key-suggests", "[crictl]\ntimout = 3\n", "windows", ["[crictl] 'timout' is not a setting of crictl", "did you mean 'timeout'?"]),
    # a component that is not active on the target is still checked (one dockless.toml for both)
    ("inactive-component-checked", '[cni_bridge]\nsubnet = "x"\n', "windows", ["[cni_bridge] subnet = 'x'"]),
    ("unknown-table", "[containred]\nlog_level = 'debug'\n", "windows",
     ["unknown table [containred]", "did you mean 'containerd'?", "[paths]", "[unverified]", "[host]", "[versions]", "[cni_bridge]", "[pods]"]),
    ("unknown-table-dashed", "[cni-brdge]\nbridge = 'x'\n", "linux", ["unknown table [cni-brdge]", "did you mean 'cni_bridge'?"]),
    ("unknown-top-level-key", "trget = 'windows'\n", "windows",
     ["unknown setting 'trget'", "did you mean 'target'?", "target", "disable_plugins", "mirror", "root", "service",
      "[paths]", "[unverified]", "[host]", "[versions]", "[sha256]", "[containerd]", "[crictl]", "[cni_nat]"]),
    ("component-not-a-table", "crictl = 5\n", "windows", ["crictl must be a table", "[crictl]"]),
    ("windows-paths-posix", '[paths]\ncni_bin_dir = "/opt/cni/bin"\n', "windows",
     ["[paths] cni_bin_dir = '/opt/cni/bin'", "must be a Windows path such as C:\\opt\\cni\\bin"]),
    ("windows-paths-relative", '[paths]\ncni_conf_dir = "cni\\\\conf"\n', "windows", ["[paths] cni_conf_dir", "Windows path"]),
    ("linux-paths-windows", "[paths]\ncni_bin_dir = 'C:\\opt\\cni\\bin'\n", "linux", ["[paths] cni_bin_dir", "is a Windows path", "/opt/cni/bin"]),
]


@pytest.mark.parametrize(("toml", "target", "fragments"), [c[1:] for c in SESSION_CASES], ids=[c[0] for c in SESSION_CASES])
def test_bad_component_input_is_one_line_before_anything_runs(tmp_path: Path, toml: str, target: str, fragments: list[str]) -> None:
    write(tmp_path, toml)
    before = tree(tmp_path)
    with pytest.raises(SettingsError) as err:
        session_for(tmp_path, toml, target=target)
    msg = one_line(err, *fragments)
    assert msg.startswith("dockless.toml: ")  # the file is named too
    assert tree(tmp_path) == before


# -- what is accepted ----------------------------------------------------------------------------------------------
def test_dashed_table_is_an_alias_of_the_component_key(tmp_path: Path) -> None:
    session = session_for(tmp_path, '[cni-bridge]\nbridge = "br-pods"\nsubnet = "10.77.0.0/16"\n', target="linux")
    assert session.config("cni-bridge")["bridge"] == "br-pods" and session.config("cni_bridge")["subnet"] == "10.77.0.0/16"


def test_top_level_sha256_table_pins_like_versions_toml(tmp_path: Path) -> None:
    digest = "a" * 64
    settings = settings_for(tmp_path, f'[sha256]\n"crictl-v1.36.0-windows-amd64.tar.gz" = "{digest.upper()}"\n')
    assert settings.pins.sha256["crictl-v1.36.0-windows-amd64.tar.gz"] == digest


def test_valid_values_of_every_kind_are_accepted(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    toml = f"""
mirror = {str(mirror)!r}
disable_plugins = ["images"]
[host]
windows_build = 17763
windows_ubr = 5830
edition = "client"
user_profile = 'C:\\Users\\me'
interfaces = [{{ IPAddress = "192.168.1.10", PrefixLength = 24 }}]
[unverified]
allow = ["hns.psm1"]
[paths]
cni_bin_dir = 'D:\\cni\\bin'
[crictl]
timeout = 30
[cni_nat]
outbound_nat_exceptions = ["10.0.0.0/8", "192.168.1.5"]
[pods]
isolation = "hyperv"
windows_image = "mcr.microsoft.com/windows/nanoserver:ltsc2019"
[images]
smoke_image = "registry.example.com:5000/team/busybox@sha256:{'b' * 64}"
"""
    session = session_for(tmp_path, toml)
    assert session.config("crictl")["timeout"] == 30
    assert str(session.layout.cni_bin_dir) == "D:\\cni\\bin"
    assert session.host("windows_build") == 17763 and session.host("edition") == "client"
    assert session.settings.disabled_plugins == ("images",)


def test_a_disabled_plugins_table_is_left_alone(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "[images]\nsmoke_image = 'busybox'\n", {"DOCKLESS_DISABLE_PLUGINS": "images"})
    registry = collect(plugin_manager(entry_points=False, disabled=settings.disabled_plugins))
    Session(MockContext(), settings.with_flags(target="windows"), registry, dry=True)


@pytest.mark.parametrize(("word", "force"), [("1", True), ("true", True), ("YES", True), ("0", False), ("false", False), ("no", False)])
def test_dockless_force_words(tmp_path: Path, word: str, force: bool) -> None:
    assert settings_for(tmp_path, "", {"DOCKLESS_FORCE": word}).force is force


@pytest.mark.parametrize("mirror", ["https://mirror.example.com/github", "http://127.0.0.1:8080", "file", "folder"])
def test_mirrors_that_exist_are_accepted(tmp_path: Path, mirror: str) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    value = {"file": folder.as_uri(), "folder": str(folder)}.get(mirror, mirror)
    assert settings_for(tmp_path, "", {"DOCKLESS_MIRROR": value}).mirror == value


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null")
def test_dockless_config_dev_null_is_an_empty_config(tmp_path: Path) -> None:
    settings = load_settings({"DOCKLESS_CONFIG": "/dev/null"}, cwd=tmp_path)
    assert settings.sections == {} and settings.config_file is None


# -- DOCKLESS_DISABLE_PLUGINS names an installed plugin -------------------------------------------------------------
def test_disabling_a_plugin_that_is_not_installed_names_the_installed_ones() -> None:
    with pytest.raises(PluginError) as err:
        plugin_manager(entry_points=False, disabled=("crictll",))
    one_line(err, "'crictll'", "not an installed plugin", "crictl", "cni-bridge", "containerd")


def test_builtins_may_be_disabled_by_either_name() -> None:
    pm = plugin_manager(entry_points=False, disabled=("crictl", "dockless.images"))
    assert not pm.has_plugin("dockless.crictl") and not pm.has_plugin("dockless.images")


# -- Setting: kinds and checks -----------------------------------------------------------------------------------------
def test_setting_kind_comes_from_the_default_unless_given() -> None:
    assert Setting(0, "x").problem("n", "1") == "n = '1' must be a whole number, such as n = 1"
    assert Setting(0, "x").problem("n", True) is not None  # a boolean is not a number
    assert Setting(0.5, "x").problem("f", 2) is None  # an integer is a number
    assert Setting(None, "x").problem("any", ["x"]) is None
    assert Setting("a", "x", ("a", "b")).problem("c", "b") is None
    assert Setting(True, "x", (True, False)).problem("b", 0) == "b = 0 must be one of true, false"


def test_ready_made_checks() -> None:
    assert at_least(1)(0) == "must be at least 1" and at_least(1)(1) is None
    assert ipv4_network("192.168.0.0/24") is None and "did you mean" in str(ipv4_network("192.168.0.7/24"))
    assert interface_name("cni0") is None and interface_name("a" * 16) is not None and interface_name("..") is not None
    assert cidr_list(["10.0.0.0/8", "10.1.2.3"]) is None and cidr_list([5]) is not None
    for ref in ("busybox", "docker.io/library/busybox:1.36", "localhost:5000/a/b:c", "registry.k8s.io/pause:3.10.2"):
        assert image_reference(ref) is None, ref
    for ref in ("", "Busybox", "a b", "a:b:c", "registry.k8s.io/pause:"):
        assert image_reference(ref) is not None, ref


def test_a_check_that_raises_is_one_line_naming_the_component(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from dockless import hookimpl
    from dockless.model import Component

    def broken(value: Any) -> str | None:
        raise KeyError("oops")

    @hookimpl
    def dockless_register_components(registry: Any) -> None:
        registry.add(Component(name="fragile", steps=(), settings={"level": Setting(1, "a level", check=broken)}))

    plugin = SimpleNamespace(__name__="fragile-plugin", dockless_register_components=dockless_register_components)
    settings = settings_for(tmp_path, "[fragile]\nlevel = 2\n").with_flags(target="windows")
    with pytest.raises(SettingsError) as err:
        Session(MockContext(), settings, collect(plugin_manager(entry_points=False, extra=(plugin,))), dry=True)
    one_line(err, "[fragile] level", "check of fragile failed", "KeyError")


# -- through `invoke plan` ----------------------------------------------------------------------------------------------
def invoke_plan(tmp_path: Path, toml: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    write(tmp_path, toml)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    environ.update(DOCKLESS_CACHE=str(tmp_path / "cache"), **env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "plan", *args],
                          cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)


PLAN_CASES = [
    # (id, dockless.toml, environment, fragment)
    ("crictl-timeout", '[crictl]\ntimeout = "ten"\n', {}, "[crictl] timeout = 'ten'"),
    ("paths-number", "[paths]\ncni_bin_dir = 5\n", {}, "[paths] cni_bin_dir = 5"),
    ("mirror-number", "mirror = 5\n", {}, "mirror = 5 in dockless.toml"),
    ("versions-string", 'versions = "x"\n', {}, "versions = 'x'"),
    ("unknown-table", "[containred]\n", {}, "unknown table [containred]"),
    ("host-build", "[host]\nwindows_build = 'abc'\n", {}, "[host] windows_build = 'abc'"),
    ("disable-unknown-plugin", "", {"DOCKLESS_DISABLE_PLUGINS": "nosuch"}, "DOCKLESS_DISABLE_PLUGINS names 'nosuch'"),
    ("root-empty", "", {"DOCKLESS_ROOT": ""}, "DOCKLESS_ROOT is set but empty"),
]


@pytest.mark.parametrize(("toml", "env", "fragment"), [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES])
def test_invoke_plan_bad_input_is_one_line_without_traceback(tmp_path: Path, toml: str, env: dict[str, str], fragment: str) -> None:
    write(tmp_path, toml)
    before = tree(tmp_path)
    proc = invoke_plan(tmp_path, toml, "--target", "windows", **env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert tree(tmp_path) == before


def test_plan_notes_a_cni_choice_for_the_other_target(tmp_path: Path) -> None:
    proc = invoke_plan(tmp_path, "", "--target", "linux", DOCKLESS_CNI="cni-nat", DOCKLESS_ROOT=str(tmp_path / "root"))
    assert proc.returncode == 0, proc.stderr
    assert "  note: cni = cni-nat applies to windows; using cni-bridge on linux" in proc.stdout.splitlines()


def test_plan_shows_host_facts_from_dockless_toml_whole(tmp_path: Path) -> None:
    proc = invoke_plan(tmp_path, "[host]\nwindows_build = 17763\n", "--target", "windows")
    assert proc.returncode == 0, proc.stderr
    assert "assumed: windows_build = 17763 ([host] in dockless.toml; not probed)" in proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="a closed pipe reads differently on Windows")
def test_plan_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    write(tmp_path, "")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    read, write_end = os.pipe()
    os.close(read)  # like `| head` that has already gone
    try:
        proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "plan", "--target", "windows", "--json"],
                              cwd=tmp_path, env=environ, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert proc.returncode != 0
    assert proc.stderr == "", proc.stderr
