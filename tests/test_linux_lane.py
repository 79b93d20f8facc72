"""The Linux lane for real (issue 2, "What it must show" #3 and #4).

Debian's containerd/runc/CNI plugins are packed as upstream release assets and served on
127.0.0.1 (``linux_mirror_server`` in conftest.py); ``invoke setup`` runs as a subprocess with
``DOCKLESS_MIRROR`` pointing there and ``DOCKLESS_SERVICE=process`` under a private short root,
then containerd is checked on its socket, an OCI archive is imported, ``smoke`` runs a container.
Every containerd a test starts is stopped in a finalizer, also when the test fails.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockless.testing.httpserver import LocalHTTPServer
from dockless.testing.images import busybox_oci
from dockless.testing.mirror import serve
from dockless.testing.processes import alive, cmdline, describe
from plugins.containerd_service import socket_answers

NEEDS = {
    "/usr/bin/containerd": "containerd",
    "/usr/sbin/runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/bin/busybox": "busybox-static",
}
_missing = sorted({pkg for path, pkg in NEEDS.items() if not Path(path).exists()})

pytestmark = [
    pytest.mark.linux_lane,
    pytest.mark.skipif(sys.platform != "linux", reason="the Linux lane runs containerd on Linux"),
    pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="the Linux lane starts containerd: needs root"),
    pytest.mark.skipif(not Path("/usr/bin/containerd").exists(),
                       reason="/usr/bin/containerd is missing: apt-get install -y containerd"),
    pytest.mark.skipif(bool(_missing), reason=f"needs Debian packages: apt-get install -y {' '.join(_missing)}"),
]

REPO = Path(__file__).resolve().parent.parent
SMOKE_IMAGE = "docker.io/library/busybox:dockless"
Mirror = Any  # conftest.Mirror: root, url, server, versions, crictl
STATUS_LINE = re.compile(r"^\s*(ok|changed|failed|warning|skipped)\s+([\w-]+\.[\w.-]+)(\s+\(.*\))?\s*$")


# -- helpers ---------------------------------------------------------------------------------------
@dataclass
class Lane:
    root: Path
    env: dict[str, str]
    mirror: Mirror

    @property
    def pid_file(self) -> Path:
        return self.root / "var" / "lib" / "dockless" / "containerd.pid"

    @property
    def socket(self) -> Path:
        return self.root / "run" / "containerd" / "containerd.sock"

    @property
    def bin_dir(self) -> Path:
        return self.root / "usr" / "local" / "bin"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "containerd" / "config.toml"


def invoke(lane: Lane, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS`` in the repo with the lane's environment; a failure shows its output."""
    cmd = [sys.executable, "-m", "invoke", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=lane.env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(describe(proc), pytrace=False)
    return proc




def lane_env(root: Path, work: Path, mirror: Mirror, mirror_url: str | None = None) -> dict[str, str]:
    config = work / "dockless.toml"
    config.write_text("[versions]\n" + "".join(f'{k} = "{v}"\n' for k, v in mirror.versions.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    env.update({
        "DOCKLESS_TARGET": "linux",
        "DOCKLESS_ROOT": str(root),
        "DOCKLESS_MIRROR": mirror_url or mirror.url,
        "DOCKLESS_SERVICE": "process",
        "DOCKLESS_CACHE": str(work / "cache"),
        "DOCKLESS_CONFIG": str(config),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    })
    if mirror.crictl is None:
        env["DOCKLESS_DISABLE_PLUGINS"] = "crictl"
    return env


def short_root() -> Path:
    """Unix socket paths are limited to 108 bytes: keep roots short (``/tmp/dlXXXXXXXX``)."""
    return Path(tempfile.mkdtemp(dir="/tmp", prefix="dl"))






def _kill(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def stop_and_remove(root: Path) -> None:
    """Stop the containerd started under ``root`` (pid file) and the shims it left, unmount
    whatever is still mounted under the root, and delete it. Only processes whose command line
    names this root are touched."""
    marker = str(root).encode()
    pid_file = root / "var" / "lib" / "dockless" / "containerd.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid and any(marker in arg for arg in cmdline(pid)):
        _kill(pid)
    for entry in Path("/proc").iterdir():  # shims of that containerd (their -address is under root)
        if entry.name.isdigit():
            args = cmdline(int(entry.name))
            if args and b"containerd-shim" in args[0] and any(marker in a for a in args):
                _kill(int(entry.name))
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    for mnt in sorted((m for m in mounts if m == str(root) or m.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def statuses(stderr: str) -> dict[str, str]:
    """``{step: status}`` from the per-step lines setup prints."""
    found: dict[str, str] = {}
    for line in stderr.splitlines():
        m = STATUS_LINE.match(line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


# -- the lane: one real setup per module ----------------------------------------------------------------
@pytest.fixture(scope="module")
def lane(linux_mirror_server: Mirror, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lane]:
    root = short_root()
    work = tmp_path_factory.mktemp("lane")
    the_lane = Lane(root, lane_env(root, work, linux_mirror_server), linux_mirror_server)
    try:
        yield the_lane
    finally:
        stop_and_remove(root)


@pytest.fixture(scope="module")
def first_setup(lane: Lane) -> subprocess.CompletedProcess[str]:
    lane.mirror.server.reset_counters()
    proc = invoke(lane, "setup", check=False)
    proc.bytes_served = lane.mirror.server.bytes_sent  # type: ignore[attr-defined]
    if proc.returncode != 0:
        pytest.fail("the first setup failed:\n" + describe(proc), pytrace=False)
    return proc


def test_setup_installs_and_starts_containerd(lane: Lane, first_setup: subprocess.CompletedProcess[str]) -> None:
    for name in ("containerd", "ctr", "containerd-shim-runc-v2", "runc"):
        assert (lane.bin_dir / name).is_file(), f"{name} not installed under {lane.bin_dir}\n{describe(first_setup)}"
    assert (lane.root / "opt" / "cni" / "bin" / "bridge").is_file()
    assert lane.config.is_file()
    assert list((lane.root / "etc" / "cni" / "net.d").glob("*.conflist"))
    steps = statuses(first_setup.stderr)
    assert steps, describe(first_setup)
    assert "failed" not in steps.values(), describe(first_setup)
    assert steps.get("containerd.service") == "changed", describe(first_setup)
    assert first_setup.bytes_served > 0  # type: ignore[attr-defined]  # it really downloaded
    pid = int(lane.pid_file.read_text())
    assert alive(pid) and any(str(lane.root).encode() in a for a in cmdline(pid))


def test_containerd_answers_on_the_socket_under_the_root(lane: Lane, first_setup: subprocess.CompletedProcess[str]) -> None:
    assert lane.socket.is_socket(), f"no socket at {lane.socket}"
    assert len(str(lane.socket).encode()) < 108
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(lane.socket))
    proc = subprocess.run([str(lane.bin_dir / "ctr"), "--address", str(lane.socket), "version"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, describe(proc)
    server = proc.stdout.split("Server:", 1)
    assert len(server) == 2, describe(proc)
    assert re.search(r"Version:\s+v?" + re.escape(lane.mirror.versions["containerd"]), server[1]), describe(proc)


def test_effective_config_names_the_dirs_dockless_installed_to(lane: Lane, first_setup: subprocess.CompletedProcess[str]) -> None:
    """issue 2 #5: what the installed containerd reads from the written config.toml."""
    import tomllib

    proc = subprocess.run([str(lane.bin_dir / "containerd"), "--config", str(lane.config), "config", "dump"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "level=warning" not in proc.stderr, describe(proc)
    dump = tomllib.loads(proc.stdout)
    plugins = dump["plugins"]
    if "io.containerd.grpc.v1.cri" in plugins:  # containerd 1.x
        cri = plugins["io.containerd.grpc.v1.cri"]
        bins, conf, pause = [cri["cni"]["bin_dir"]], cri["cni"]["conf_dir"], cri["sandbox_image"]
    else:  # 2.x
        cni = plugins["io.containerd.cri.v1.runtime"]["cni"]
        bins, conf = cni.get("bin_dirs") or [cni["bin_dir"]], cni["conf_dir"]
        pause = plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"]
    assert bins == [str(lane.root / "opt" / "cni" / "bin")] and (Path(bins[0]) / "bridge").is_file()
    assert conf == str(lane.root / "etc" / "cni" / "net.d") and list(Path(conf).glob("*.conflist"))
    assert pause == "registry.k8s.io/pause:3.10.2"
    assert dump["grpc"]["address"] == str(lane.socket) and dump["root"].startswith(str(lane.root))


def test_image_import_and_smoke_prints_hello(lane: Lane, first_setup: subprocess.CompletedProcess[str],
                                             tmp_path: Path) -> None:
    archive = busybox_oci(tmp_path / "busybox.tar", ref=SMOKE_IMAGE)
    imported = invoke(lane, "image.import", str(archive))
    assert SMOKE_IMAGE in imported.stdout + imported.stderr, describe(imported)
    listed = invoke(lane, "image.list")
    assert SMOKE_IMAGE in listed.stdout, describe(listed)
    smoke = invoke(lane, "smoke", "--image", SMOKE_IMAGE)
    assert "hello" in smoke.stdout.splitlines(), describe(smoke)


def test_second_setup_changes_nothing_and_downloads_nothing(lane: Lane, first_setup: subprocess.CompletedProcess[str]) -> None:
    lane.mirror.server.reset_counters()
    again = invoke(lane, "setup")
    assert lane.mirror.server.bytes_sent == 0, f"second setup downloaded {dict(lane.mirror.server.bytes_by_path)}"
    assert lane.mirror.server.total_requests == 0, f"second setup asked for {dict(lane.mirror.server.requests)}"
    assert "nothing to change" in again.stderr, describe(again)
    first, second = statuses(first_setup.stderr), statuses(again.stderr)
    assert set(second) == set(first), describe(again)
    assert set(second.values()) == {"ok"}, describe(again)
    assert socket_answers(lane.socket)


# -- a corrupted mirror ------------------------------------------------------------------------------
def test_checksum_mismatch_fails_with_one_line_and_installs_nothing(linux_mirror_server: Mirror, tmp_path: Path) -> None:
    bad_tree = tmp_path / "mirror"
    shutil.copytree(linux_mirror_server.root, bad_tree)
    version = linux_mirror_server.versions["containerd"]
    asset = f"containerd-{version}-linux-amd64.tar.gz"
    archive = bad_tree / "containerd" / "containerd" / "releases" / "download" / f"v{version}" / asset
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: the .sha256sum no longer matches
    archive.write_bytes(bytes(data))
    root = short_root()
    try:
        with LocalHTTPServer() as server:
            lane = Lane(root, lane_env(root, tmp_path, linux_mirror_server, serve(server, bad_tree)), linux_mirror_server)
            proc = invoke(lane, "setup", check=False)
        assert proc.returncode != 0, describe(proc)
        assert "Traceback" not in proc.stderr, describe(proc)
        errors = [line for line in proc.stderr.splitlines()
                  if re.search(r"mismatch|fail|error", line, re.IGNORECASE)]
        assert len(errors) == 1, f"expected one error line, got {errors}\n{describe(proc)}"
        assert asset in errors[0] and "sha256" in errors[0], describe(proc)
        installed = [p.relative_to(root) for p in root.rglob("*")
                     if p.is_file() and not p.is_relative_to(root / "var" / "lib" / "dockless")]
        assert installed == [], f"files were installed despite the mismatch: {installed}"
        assert not lane.config.exists()
        assert not lane.bin_dir.exists() or not any(lane.bin_dir.iterdir())
        assert not lane.pid_file.exists()
    finally:
        stop_and_remove(root)
