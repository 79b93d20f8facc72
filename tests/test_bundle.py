"""``invoke bundle``: every artifact of a target, verified, in a folder that serves as the mirror.

The Windows bundle is checked against the Windows plan; a Linux bundle is used as the mirror in
its three forms (a path, ``file://``, HTTP over the folder); and on a root machine with Debian's
containerd, a Linux bundle drives a real ``setup`` with the HTTP mirror it came from stopped and
every other network access made to fail (a dead proxy).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockless.bundle import (
    BundleError,
    fresh_session,
    make_bundle,
    planned_artifacts,
    read_manifest,
    release_path,
)
from dockless.download import Cache, FetchStats, fetch_all
from dockless.manager import collect, plugin_manager
from dockless.settings import load_settings
from dockless.testing.httpserver import LocalHTTPServer
from dockless.testing.mirror import (
    add_cni_plugins,
    add_containerd,
    add_runc,
    debian_versions,
    linux_mirror,
    serve,
    windows_mirror,
)
from plugins.containerd_service import socket_answers

REPO = Path(__file__).resolve().parent.parent
COMMIT = "48b403efa770cec7495722c270557480d9d7277a"
PINS = {"containerd": "2.2.7", "runc": "1.3.0", "cni-plugins": "1.6.2", "windows-cni": "0.3.1",
        "crictl": "1.36.0", "hns-module-commit": COMMIT}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_versions(path: Path, pins: dict[str, str], sha256: dict[str, str] | None = None) -> Path:
    text = "".join(f'{k} = "{v}"\n' for k, v in pins.items())
    text += "\n[sha256]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in (sha256 or {}).items())
    path.write_text(text, encoding="utf-8")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DOCKLESS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def invoke(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=timeout)
    return r


def session_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, versions: Path, target: str,
                mirror: str | None, disabled: str = "") -> Any:
    monkeypatch.setenv("DOCKLESS_VERSIONS", str(versions))
    cfg = tmp_path / "dockless.toml"
    cfg.touch()
    env = {"DOCKLESS_CONFIG": str(cfg), "DOCKLESS_DISABLE_PLUGINS": disabled}
    if mirror:
        env["DOCKLESS_MIRROR"] = mirror
    settings = load_settings(env)
    registry = collect(plugin_manager(entry_points=False, disabled=settings.disabled_plugins))
    return fresh_session(settings, registry, target)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# -- Windows: the bundle holds every artifact the plan names ------------------------------------------
def test_windows_bundle_has_every_artifact_of_the_windows_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    hns_pin = windows_mirror(mirror, PINS)
    versions = write_versions(tmp_path / "versions.toml", PINS, hns_pin)
    out = tmp_path / "bundle"
    (tmp_path / "dockless.toml").touch()
    with LocalHTTPServer() as server:
        env = clean_env(DOCKLESS_MIRROR=serve(server, mirror), DOCKLESS_VERSIONS=str(versions),
                        DOCKLESS_CONFIG=str(tmp_path / "dockless.toml"), DOCKLESS_CACHE=str(tmp_path / "cache"))
        r = invoke(env, "bundle", str(out), "--target", "windows")
    assert r.returncode == 0, r.stderr
    assert "4 artifacts" in r.stdout and f"DOCKLESS_MIRROR={out}" in r.stdout

    manifest = read_manifest(out)
    assert manifest["target"] == "windows"
    assert manifest["versions"] == {k: PINS[k] for k in ("containerd", "hns-module-commit", "windows-cni", "crictl")}
    listed = {a["path"]: a for a in manifest["artifacts"]}
    for entry in listed.values():
        blob = out / entry["path"]
        assert sha(blob) == entry["sha256"] and blob.stat().st_size == entry["size"]
        assert entry["url"] == "https://github.com/" + entry["path"]
        if entry["checksum"]:
            assert (out / entry["checksum"]).is_file()
    assert listed[f"microsoft/SDN/raw/{COMMIT}/Kubernetes/windows/hns.psm1"]["pin"] == f"hns.psm1@{COMMIT}"

    # every Install of the Windows plan (upstream URLs, no mirror) is in the bundle under its github.com path
    session = session_for(monkeypatch, tmp_path, versions, "windows", None)
    planned = planned_artifacts(session)
    assert {a.key for a in planned} == {"containerd", "hns-module-commit", "windows-cni", "crictl"}
    for a in planned:
        present = [release_path(u, None) for u in a.urls if (out / release_path(u, None)).is_file()]
        assert present and present[0] in listed, a.urls

    # and the bundle alone serves the whole Windows plan (no HTTP at all)
    session = session_for(monkeypatch, tmp_path, versions, "windows", str(out))
    stats = FetchStats()
    fetch_all(planned_artifacts(session), Cache(tmp_path / "offline-cache"), progress=False, stats=stats)
    assert stats.requests == 0 and stats.bytes_downloaded == 0 and stats.downloads == 4


def test_windows_bundle_takes_the_renamed_asset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """windows-container-networking v0.3.1 under its older name only: the bundle holds that name."""
    from dockless.testing.mirror import (
        add_containerd,
        add_crictl,
        add_hns_module,
        add_windows_cni,
    )

    mirror = tmp_path / "mirror"
    add_containerd(mirror, PINS["containerd"], "windows", {"containerd.exe": b"x", "ctr.exe": b"y", "containerd-shim-runhcs-v1.exe": b"z"})
    add_windows_cni(mirror, PINS["windows-cni"], old_name=True)
    add_crictl(mirror, PINS["crictl"], "windows", b"crictl")
    _rel, hns = add_hns_module(mirror, COMMIT)
    versions = write_versions(tmp_path / "versions.toml", PINS, {f"hns.psm1@{COMMIT}": hns})
    with LocalHTTPServer() as server:
        session = session_for(monkeypatch, tmp_path, versions, "windows", serve(server, mirror))
        manifest = make_bundle(session, tmp_path / "bundle", cache=Cache(tmp_path / "cache"), progress=False)
    paths = {a["path"] for a in manifest["artifacts"]}
    old = "microsoft/windows-container-networking/releases/download/v0.3.1/windows-container-networking-cni-amd64-0.3.1.zip"
    assert old in paths and (tmp_path / "bundle" / (old + ".sha256")).is_file()


# -- Linux: the bundle as a path, a file:// URL and over HTTP ---------------------------------------------
def stand_in_linux_mirror(root: Path) -> None:
    add_containerd(root, PINS["containerd"], "linux", {"containerd": b"c", "ctr": b"t", "containerd-shim-runc-v2": b"s"})
    add_runc(root, PINS["runc"], b"runc stand-in")
    add_cni_plugins(root, PINS["cni-plugins"], {"bridge": b"b", "host-local": b"h", "loopback": b"l", "portmap": b"p"})


def test_linux_bundle_serves_as_path_file_url_and_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in_linux_mirror(tmp_path / "mirror")
    versions = write_versions(tmp_path / "versions.toml", PINS)
    out = tmp_path / "bundle"
    with LocalHTTPServer() as server:
        session = session_for(monkeypatch, tmp_path, versions, "linux", serve(server, tmp_path / "mirror"), "crictl")
        manifest = make_bundle(session, out, cache=Cache(tmp_path / "cache"), progress=False)
    assert manifest["target"] == "linux" and len(manifest["artifacts"]) == 3
    runc = next(a for a in manifest["artifacts"] if a["key"] == "runc")
    assert runc["checksum"] == "opencontainers/runc/releases/download/v1.3.0/runc.sha256sum"

    with LocalHTTPServer() as bundle_server:
        forms = {"path": str(out), "file": out.as_uri(), "http": serve(bundle_server, out)}
        for name, base in forms.items():
            session = session_for(monkeypatch, tmp_path, versions, "linux", base, "crictl")
            stats = FetchStats()
            blobs = fetch_all(planned_artifacts(session), Cache(tmp_path / f"cache-{name}"), progress=False, stats=stats)
            assert {p.name for p in blobs.values()} == {a["sha256"] for a in manifest["artifacts"]}, name
            assert stats.downloads == 3
            assert (stats.requests == 0) == (name != "http"), name
        assert bundle_server.total_requests > 0


def test_bundle_is_rebuilt_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in_linux_mirror(tmp_path / "mirror")
    versions = write_versions(tmp_path / "versions.toml", PINS)
    cache = Cache(tmp_path / "cache")
    with LocalHTTPServer() as server:
        session = session_for(monkeypatch, tmp_path, versions, "linux", serve(server, tmp_path / "mirror"), "crictl")
        first = make_bundle(session, tmp_path / "b1", cache=cache, progress=False)
        server.reset_counters()
        second = make_bundle(session, tmp_path / "b2", cache=cache, progress=False)
        assert server.bytes_sent == 0
    assert first["artifacts"] == second["artifacts"]


def test_bundle_missing_pin_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pins = {k: v for k, v in PINS.items() if k != "crictl"}
    versions = write_versions(tmp_path / "versions.toml", pins)
    session = session_for(monkeypatch, tmp_path, versions, "linux", None)  # linux: no hns.psm1 blocker first
    with pytest.raises(BundleError) as err:
        planned_artifacts(session)
    msg = str(err.value)
    assert msg.startswith("crictl.install: ") and "'crictl'" in msg and "\n" not in msg


def test_release_path() -> None:
    url = "https://github.com/containerd/containerd/releases/download/v2.2.7/containerd-2.2.7-linux-amd64.tar.gz"
    assert release_path(url, None) == url.removeprefix("https://github.com/")
    assert release_path("http://m:8080/x/a/releases/download/v1/a.tgz", "http://m:8080/x/") == "a/releases/download/v1/a.tgz"
    with pytest.raises(BundleError, match="not a github.com asset"):
        release_path("https://example.org/a.tgz", None)
    with pytest.raises(BundleError, match="unusable path"):
        release_path("https://github.com/a/../../etc/passwd", None)


def test_bundle_task_reports_a_download_error_in_one_line(tmp_path: Path) -> None:
    versions = write_versions(tmp_path / "versions.toml", PINS)
    (tmp_path / "dockless.toml").touch()
    with LocalHTTPServer() as server:  # an empty mirror: every asset is 404
        env = clean_env(DOCKLESS_MIRROR=server.url(""), DOCKLESS_VERSIONS=str(versions),
                        DOCKLESS_CONFIG=str(tmp_path / "dockless.toml"), DOCKLESS_CACHE=str(tmp_path / "cache"),
                        DOCKLESS_DISABLE_PLUGINS="crictl")
        r = invoke(env, "bundle", str(tmp_path / "b"), "--target", "linux")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert any(line.startswith("bundle: ") and "404 Not Found" in line for line in r.stderr.splitlines()), r.stderr


# -- the Linux lane: bundle, stop the mirror, setup from the bundle ------------------------------------------
@pytest.fixture
def lane_root() -> Iterator[Path]:
    """A short root under /tmp (the socket path must stay short); whatever containerd a test
    started there is killed afterwards, also when the test fails."""
    root = Path(tempfile.mkdtemp(prefix="dlbundle", dir="/tmp"))
    yield root
    pid_file = root / "var" / "lib" / "dockless" / "containerd.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.linux_lane
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="starts containerd: needs root on Linux")
@pytest.mark.skipif(not Path("/usr/bin/containerd").exists() or not Path("/usr/sbin/runc").exists()
                    or not Path("/usr/lib/cni/bridge").exists(),
                    reason="needs Debian's containerd, runc and containernetworking-plugins")
def test_setup_from_bundle_with_the_mirror_stopped(tmp_path: Path, lane_root: Path) -> None:
    versions = {k: v for k, v in debian_versions().items() if k in ("containerd", "runc", "cni-plugins")}
    pins = write_versions(tmp_path / "versions.toml", {**PINS, **versions})
    (tmp_path / "dockless.toml").touch()
    linux_mirror(tmp_path / "mirror", versions)
    bundle = tmp_path / "bundle"
    base = dict(DOCKLESS_VERSIONS=str(pins), DOCKLESS_CONFIG=str(tmp_path / "dockless.toml"),
                DOCKLESS_DISABLE_PLUGINS="crictl", DOCKLESS_TARGET="linux")
    with LocalHTTPServer() as server:
        r = invoke(clean_env(**base, DOCKLESS_MIRROR=serve(server, tmp_path / "mirror"),
                             DOCKLESS_CACHE=str(tmp_path / "bundle-cache")), "bundle", str(bundle), "--target", "linux")
        assert r.returncode == 0, r.stdout + r.stderr
    # the HTTP mirror is stopped; any other HTTP(S) access goes to a dead proxy and fails
    dead = "http://127.0.0.1:9"
    env = clean_env(**base, DOCKLESS_MIRROR=str(bundle), DOCKLESS_CACHE=str(tmp_path / "setup-cache"),
                    DOCKLESS_ROOT=str(lane_root), DOCKLESS_SERVICE="process",
                    HTTP_PROXY=dead, HTTPS_PROXY=dead, http_proxy=dead, https_proxy=dead, NO_PROXY="", no_proxy="")
    r = invoke(env, "setup")
    assert r.returncode == 0, r.stdout + r.stderr
    sock = lane_root / "run" / "containerd" / "containerd.sock"
    assert socket_answers(sock)
    ctr = subprocess.run([str(lane_root / "usr" / "local" / "bin" / "ctr"), "--address", str(sock), "version"],
                         capture_output=True, text=True, timeout=30)
    assert ctr.returncode == 0 and versions["containerd"] in ctr.stdout, ctr.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    cached = {p.name for p in (tmp_path / "setup-cache" / "sha256").iterdir()}
    assert cached == {a["sha256"] for a in manifest["artifacts"]}
    assert (lane_root / "usr" / "local" / "bin" / "runc").is_file()
    assert (lane_root / "opt" / "cni" / "bin" / "bridge").is_file()
