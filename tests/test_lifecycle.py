"""Lifecycle of an install (issue 6): status, doctor, teardown, drift, upgrades, and convergence of
`setup` after a SIGKILL at any point.

The Linux tests run the real lane: Debian's containerd/runc/CNI binaries packed as release
assets and served on 127.0.0.1 (``linux_mirror_server`` in conftest.py), ``invoke`` as a
subprocess under a private short root, containerd as a background process. Every containerd a
test starts is stopped in a finalizer. The Windows checks run at the command level on
:class:`dockless.testing.windows.FakeWindowsHost`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockless.testing.processes import alive, cmdline, describe
from plugins.containerd_service import socket_answers

REPO = Path(__file__).resolve().parent.parent
SMOKE_IMAGE = "docker.io/library/busybox:dockless"
NEEDS = {"/usr/bin/containerd": "containerd", "/usr/sbin/runc": "runc",
         "/usr/lib/cni/bridge": "containernetworking-plugins", "/bin/busybox": "busybox-static"}
_missing = sorted({pkg for path, pkg in NEEDS.items() if not Path(path).exists()})

LINUX_LANE = [
    pytest.mark.linux_lane,
    pytest.mark.skipif(sys.platform != "linux", reason="the Linux lane runs containerd on Linux"),
    pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="the Linux lane starts containerd: needs root"),
    pytest.mark.skipif(bool(_missing), reason=f"needs Debian packages: apt-get install -y {' '.join(_missing)}"),
]


def linux_lane(fn: Any) -> Any:
    for mark in LINUX_LANE:
        fn = mark(fn)
    return fn


# -- the Linux lane ---------------------------------------------------------------------------------
@dataclass
class Lane:
    root: Path
    work: Path
    env: dict[str, str]
    versions: dict[str, str]

    @property
    def dockless_dir(self) -> Path:
        return self.root / "var" / "lib" / "dockless"

    @property
    def pid_file(self) -> Path:
        return self.dockless_dir / "containerd.pid"

    @property
    def socket(self) -> Path:
        return self.root / "run" / "containerd" / "containerd.sock"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "containerd" / "config.toml"

    @property
    def conf_dir(self) -> Path:
        return self.root / "etc" / "cni" / "net.d"

    @property
    def crictl_yaml(self) -> Path:
        return self.root / "etc" / "crictl.yaml"

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.dockless_dir / "manifest.json").read_text())

    def pin(self, **versions: str) -> None:
        self.versions.update(versions)
        (self.work / "dockless.toml").write_text(
            "[versions]\n" + "".join(f'{k} = "{v}"\n' for k, v in self.versions.items()))

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None


def invoke(lane: Lane, *args: str, check: bool = True, env: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env={**lane.env, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        pytest.fail(describe(proc), pytrace=False)
    return proc








def our_processes(root: Path) -> list[int]:
    """Live processes started from a binary under ``root`` (containerd, shims)."""
    marker = str(root).encode() + b"/"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = cmdline(int(entry.name))
            if args and args[0].startswith(marker) and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def stop_all(root: Path) -> None:
    """Stop every process started from under ``root``, unmount what is mounted under it."""
    for pid in our_processes(root):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    while our_processes(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in our_processes(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mnt in sorted((m for m in mounts if m.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def wipe(root: Path) -> None:
    stop_all(root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()


def next_patch(version: str) -> str:
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


@pytest.fixture(scope="module")
def mirror(linux_mirror_server: Any) -> Any:
    """The shared Debian mirror plus what these tests need: a second containerd release (same
    binaries, the version is in the asset name) and a crictl asset (a stand-in binary when no
    real crictl is on this machine: dockless only installs it)."""
    from dockless.testing.mirror import (
        DEBIAN_CONTAINERD,
        LINUX_CONTAINERD,
        add_containerd,
        add_crictl,
        serve,
    )

    m = linux_mirror_server
    up = next_patch(m.versions["containerd"])
    add_containerd(m.root, up, "linux", {n: (DEBIAN_CONTAINERD / n).read_bytes() for n in LINUX_CONTAINERD})
    if m.crictl is None:
        add_crictl(m.root, m.versions["crictl"], "linux", Path("/bin/true").read_bytes())
    serve(m.server, m.root)
    return m


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dockless.testing.images import busybox_oci

    return busybox_oci(tmp_path_factory.mktemp("image") / "busybox.tar", ref=SMOKE_IMAGE)


def make_lane(mirror: Any, work: Path) -> Lane:
    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="dl"))  # unix socket paths: ≤ 108 bytes
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    env.update({
        "DOCKLESS_TARGET": "linux", "DOCKLESS_ROOT": str(root), "DOCKLESS_MIRROR": mirror.url,
        "DOCKLESS_SERVICE": "process", "DOCKLESS_CACHE": str(work / "cache"),
        "DOCKLESS_CONFIG": str(work / "dockless.toml"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    })
    lane = Lane(root, work, env, {})
    lane.pin(**mirror.versions)
    return lane


@pytest.fixture
def lane(mirror: Any, tmp_path: Path) -> Iterator[Lane]:
    the_lane = make_lane(mirror, tmp_path)
    try:
        yield the_lane
    finally:
        stop_all(the_lane.root)
        shutil.rmtree(the_lane.root, ignore_errors=True)


def smoke(lane: Lane, image: Path) -> None:
    invoke(lane, "image.import", str(image))
    proc = invoke(lane, "smoke", "--image", SMOKE_IMAGE)
    assert proc.stdout.strip() == "hello"


def status_json(lane: Lane) -> tuple[int, dict[str, Any]]:
    proc = invoke(lane, "status", "--json", check=False)
    return proc.returncode, json.loads(proc.stdout)


def wait_dead(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), f"pid {pid} still runs"


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


# -- 1. setup → status green → teardown → nothing of ours left → setup again ---------------------------
@linux_lane
def test_setup_status_teardown_setup_again(lane: Lane, image: Path) -> None:
    invoke(lane, "setup")
    code, report = status_json(lane)
    assert code == 0 and report["ok"], report["problems"]
    assert {c["name"] for c in report["components"]} >= {"runc", "containerd", "cni-bridge", "crictl"}
    assert all(c["installed"] == c["pinned"] for c in report["components"] if c["pinned"])
    assert report["service"]["ok"] and report["service"]["pid"] == lane.pid()
    assert report["network"]["ok"] and report["network"]["active"] == "10-dockless-bridge.conflist"
    smoke(lane, image)

    refused = invoke(lane, "teardown", "--purge", check=False)  # stdin is not a terminal
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert socket_answers(lane.socket) and (lane.dockless_dir / "manifest.json").exists()  # nothing was touched

    proc = invoke(lane, "teardown", "--purge", "--yes")
    for step in ("containerd.service", "containerd.install", "runc.install", "cni.install", "crictl.install"):
        assert re.search(rf"^\s*changed {re.escape(step)}", proc.stderr, re.M), proc.stderr
    assert list(lane.root.iterdir()) == [], files_under(lane.root)  # the root holds nothing dockless created
    assert our_processes(lane.root) == []
    code, report = status_json(lane)
    assert code == 1 and not report["ok"] and report["service"]["state"] == "not running"

    invoke(lane, "setup")
    assert status_json(lane)[0] == 0
    smoke(lane, image)

    proc = invoke(lane, "teardown")  # without --purge: containerd's data (and its log) stay, and it says so
    assert "teardown --purge removes them" in proc.stderr
    assert our_processes(lane.root) == []
    left = files_under(lane.root)
    assert left and all(p.startswith(("var/lib/containerd/", "run/containerd/"))
                        or p in ("var/lib/dockless/containerd.log", "var/lib/dockless/manifest.json") for p in left), left
    kept = lane.manifest()  # the manifest stays while it records data to purge, and only that
    assert kept["files"] == {} and kept["records"] == [] and str(lane.root / "var" / "lib" / "containerd") in kept["purge"]
    again = invoke(lane, "teardown")
    assert again.stdout.startswith("nothing to tear down but containerd's data") and "--purge --yes" in again.stdout
    assert files_under(lane.root) == left
    invoke(lane, "teardown", "--purge", "--yes")  # later: it still finds containerd's data, and removes it all
    assert list(lane.root.iterdir()) == [], files_under(lane.root)
    assert invoke(lane, "teardown").stdout.startswith("nothing to tear down: no manifest")


# -- 3. drift: a user-edited config.toml survives setup and teardown; --force keeps a backup ----------------
@linux_lane
def test_user_edited_config_survives_setup_and_teardown(lane: Lane) -> None:
    invoke(lane, "setup")
    rendered = lane.config.read_bytes()
    edited = rendered.replace(b"[grpc]\n", b"[grpc]\n# my own setting\n")
    assert edited != rendered
    lane.config.write_bytes(edited)

    proc = invoke(lane, "setup")
    assert "changed outside dockless" in proc.stderr, proc.stderr
    assert "\n [grpc]\n-# my own setting\n" in proc.stderr, proc.stderr  # the diff, TOML tables and all
    assert lane.config.read_bytes() == edited
    code, report = status_json(lane)
    assert code == 1 and f"{lane.config}: edited (changed outside dockless)" in report["problems"]

    proc = invoke(lane, "teardown", "--purge", "--yes")
    backups = list(lane.config.parent.glob("config.toml.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == edited
    assert not lane.config.exists() and f"kept your changes to {lane.config}" in proc.stderr
    assert files_under(lane.root) == [backups[0].relative_to(lane.root).as_posix()]  # the backup, nothing else

    invoke(lane, "setup")
    assert lane.config.read_bytes() == rendered
    time.sleep(1.1)  # backups are named by the second
    lane.config.write_bytes(edited)
    invoke(lane, "setup", "--force")
    assert lane.config.read_bytes() == rendered
    forced = set(lane.config.parent.glob("config.toml.*.bak")) - set(backups)
    assert len(forced) == 1 and forced.pop().read_bytes() == edited
    assert status_json(lane)[0] == 0

    lane.config.write_bytes(edited)  # teardown --force deletes an edited file instead of keeping it
    before = set(lane.config.parent.glob("*.bak"))
    invoke(lane, "teardown", "--force", "--purge", "--yes")
    assert not lane.config.exists() and set(lane.config.parent.glob("*.bak")) == before


# -- 4. upgrade containerd and back ------------------------------------------------------------------------
@linux_lane
def test_upgrade_and_back(lane: Lane, image: Path) -> None:
    v1 = lane.versions["containerd"]
    v2 = next_patch(v1)
    invoke(lane, "setup")
    smoke(lane, image)
    for new in (v2, v1):
        before = lane.pid()
        assert before and alive(before)
        lane.pin(containerd=new)
        err = invoke(lane, "setup").stderr
        order = [f"containerd.install: stop containerd (pid {before}) before swapping its binaries",
                 f"containerd.install: download {lane.env['DOCKLESS_MIRROR']}/containerd/containerd/releases/download/v{new}/",
                 "containerd.config: write", "containerd.service: start containerd"]
        positions = [err.find(line) for line in order]
        assert -1 not in positions and positions == sorted(positions), err
        for step, state in (("runc.install", "ok"), ("containerd.install", "changed"), ("containerd.config", "changed"),
                            ("containerd.service", "changed"), ("cni.install", "ok")):
            assert re.search(rf"^\s*{state} {re.escape(step)}", err, re.M), (step, err)
        wait_dead(before)
        after = lane.pid()
        assert after != before and alive(after) and socket_answers(lane.socket)
        assert lane.manifest()["components"]["containerd"]["version"] == new
        assert f"for containerd {new} " in lane.config.read_text()
        assert status_json(lane)[0] == 0
        out = invoke(lane, "smoke", "--image", SMOKE_IMAGE).stdout  # the image survived the swap
        assert out.strip() == "hello"
    again = invoke(lane, "setup").stderr
    assert "nothing to change" in again


# -- 5. doctor on Linux, for real -----------------------------------------------------------------------------
@linux_lane
def test_doctor_detects_and_fixes_linux(lane: Lane) -> None:
    invoke(lane, "setup")
    healthy = invoke(lane, "doctor").stdout
    assert "FAIL" not in healthy and re.search(r"^ok\s+service:", healthy, re.M), healthy

    def broken(pattern: str, fixable: bool) -> None:
        proc = invoke(lane, "doctor", check=False)
        fails = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
        assert proc.returncode == 1 and any(re.search(pattern, f) for f in fails), proc.stdout
        assert all("-> fix: " in f for f in fails), fails
        fixed = invoke(lane, "doctor", "--fix", check=False)
        if fixable:
            assert fixed.returncode == 0, describe(fixed)
            assert "FAIL" not in fixed.stdout.split("after the fixes:")[-1]
        else:
            assert fixed.returncode == 1 and "doctor --fix does it" not in next(f for f in fails if re.search(pattern, f))

    pid = lane.pid()
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # a stopped service
    wait_dead(pid)
    broken(r"^FAIL  service: containerd is not running \(nothing answers on ", fixable=True)
    assert socket_answers(lane.socket) and lane.pid() != pid

    conf = lane.conf_dir / "10-dockless-bridge.conflist"
    conf.unlink()  # no CNI conf
    broken(r"^FAIL  cni-conf: no CNI conf in ", fixable=True)
    assert conf.exists()

    other = lane.conf_dir / "00-other.conflist"  # two confs, a foreign one first
    other.write_text(json.dumps({"cniVersion": "1.0.0", "name": "other", "plugins": [{"type": "loopback"}]}))
    broken(r"^FAIL  cni-conf: 2 CNI confs in .*: containerd loads only the first \(00-other.conflist shadows", fixable=False)
    other.unlink()

    rendered = lane.config.read_bytes()  # config.toml's CNI bin dir is not where the plugins are
    lane.config.write_bytes(re.sub(rb"bin_dir = .*", b"bin_dir = '/nonexistent/cni'", rendered))
    broken(r"^FAIL  cni-dirs: config.toml looks for CNI plugins in /nonexistent/cni but they are installed in ", fixable=False)
    lane.config.write_bytes(rendered)

    (lane.root / "opt" / "cni" / "bin" / "bridge").unlink()  # the plugins are gone from the bin dir
    broken(r"^FAIL  cni-dirs: CNI plugins missing from .*: bridge", fixable=True)
    assert (lane.root / "opt" / "cni" / "bin" / "bridge").exists()

    lane.config.write_bytes(b"\xef\xbb\xbf" + rendered)  # saved with a BOM
    broken(r"^FAIL  encoding: .*config.toml is UTF-8 with BOM", fixable=True)
    assert lane.config.read_bytes() == rendered
    assert [p.read_bytes()[:3] for p in lane.config.parent.glob("config.toml.*.bak")] == [b"\xef\xbb\xbf"]

    yaml = lane.crictl_yaml.read_text()  # crictl.yaml pointing at another containerd
    lane.crictl_yaml.write_text(yaml.replace(f"unix://{lane.socket}", "unix:///run/containerd/containerd.sock"))
    broken(r"^FAIL  crictl: .*crictl.yaml runtime-endpoint is unix:///run/containerd/containerd.sock", fixable=False)
    lane.crictl_yaml.unlink()  # crictl.yaml missing
    broken(r"^FAIL  crictl: .*crictl.yaml is missing", fixable=True)
    assert lane.crictl_yaml.read_text() == yaml

    assert "FAIL" not in invoke(lane, "doctor").stdout
    assert status_json(lane)[0] == 0


# -- 6. the user's own files: never overwritten silently, put back by teardown ------------------------------
def one_failure(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused run printed (and nothing like a traceback)."""
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, describe(proc)
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    assert len(lines) == 1, describe(proc)
    return lines[0]


@linux_lane
def test_user_config_toml_outside_the_root_is_refused_before_anything(lane: Lane) -> None:
    """A config.toml the user already had (`version = 2`, nothing else) would make containerd serve
    on the host's socket and fill the host's /var/lib/containerd: refused before setup changes anything."""
    host = [Path("/var/lib/containerd"), Path("/run/containerd/containerd.sock"), Path("/opt/containerd")]
    before = [p.exists() for p in host]
    lane.config.parent.mkdir(parents=True)
    lane.config.write_text("version = 2\n")

    line = one_failure(invoke(lane, "setup", check=False))
    assert line.startswith(f"containerd.service failed: {lane.config} sets root = '/var/lib/containerd' "
                           f"(containerd's default, the key is absent) but dockless uses '{lane.root}/var/lib/containerd'"), line
    assert "grpc.address = '/run/containerd/containerd.sock'" in line and "state = '/run/containerd'" in line, line
    assert "re-run with --force to let dockless write its config" in line, line
    assert files_under(lane.root) == ["etc/containerd/config.toml"]  # nothing installed, nothing started
    assert our_processes(lane.root) == [] and [p.exists() for p in host] == before
    plan = invoke(lane, "plan").stdout  # plan names the same refusal, and the drift of a file dockless never wrote
    assert "exists and was not written by dockless" in plan and "outside dockless's layout" in plan, plan

    forced = invoke(lane, "setup", "--force")
    backups = list(lane.config.parent.glob("config.toml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == "version = 2\n", describe(forced)
    assert socket_answers(lane.socket) and [p.exists() for p in host] == before
    invoke(lane, "teardown", "--purge", "--yes")  # the user's own config.toml is back, as it was
    assert lane.config.read_text() == "version = 2\n" and not backups[0].exists()
    assert files_under(lane.root) == ["etc/containerd/config.toml"] and our_processes(lane.root) == []


@linux_lane
def test_user_binary_at_an_install_destination_is_refused_then_moved_aside_and_put_back(lane: Lane) -> None:
    runc = lane.root / "usr" / "local" / "bin" / "runc"
    runc.parent.mkdir(parents=True)
    runc.write_text("#!/bin/sh\necho my own runc\n")
    runc.chmod(0o755)

    line = one_failure(invoke(lane, "setup", check=False))
    assert line == (f"runc.install failed: {runc} exists and was not installed by dockless; move it away, or re-run "
                    f"with --force to replace it (it is kept as runc.<timestamp>.bak and teardown puts it back)"), line
    assert files_under(lane.root) == ["usr/local/bin/runc"]  # refused before any download or change

    forced = invoke(lane, "setup", "--force")
    backups = list(runc.parent.glob("runc.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == "#!/bin/sh\necho my own runc\n"
    assert f"moved {runc} (not dockless's) to {backups[0]}" in forced.stderr, describe(forced)
    assert runc.read_bytes() != backups[0].read_bytes() and socket_answers(lane.socket)
    assert lane.manifest()["backups"] == {str(runc): {"backup": str(backups[0]), "component": "runc"}}
    assert "nothing to change" in invoke(lane, "setup").stderr

    runc.write_text("#!/bin/sh\necho patched\n")  # the user changes the runc dockless installed: refused too
    line = one_failure(invoke(lane, "setup", check=False))
    assert line.startswith(f"runc.install failed: {runc} was changed since dockless installed it; "), line

    proc = invoke(lane, "teardown", "--purge", "--yes")  # teardown never deletes a file dockless did not create
    assert f"put back your {runc}" in proc.stderr, describe(proc)
    assert runc.read_text() == "#!/bin/sh\necho my own runc\n"
    edited = [p for p in runc.parent.glob("runc.*.bak")]
    assert len(edited) == 1 and edited[0].read_text() == "#!/bin/sh\necho patched\n"  # the change, kept as .bak
    assert proc.stderr.count(str(edited[0])) == 1, describe(proc)  # named once
    assert files_under(lane.root) == sorted(["usr/local/bin/runc", f"usr/local/bin/{edited[0].name}"])
    assert our_processes(lane.root) == []


# -- 2. convergence: SIGKILL setup anywhere, run it again, get the same install ---------------------------------
KILL_POINTS = [
    "download:early", "download:late",
    "runc.install:before", "extract:mid-runc", "runc.install:after",
    "extract:mid-containerd", "containerd.install:after", "containerd.config:after",
    "containerd.service:before", "containerd.service:started", "containerd.service:after",
    "cni.install:before", "extract:mid-cni", "cni.install:after", "cni.config:after", "crictl.config:after",
]
VOLATILE = ("var/lib/containerd", "run", "var/lib/dockless/containerd.pid", "var/lib/dockless/containerd.log",
            "var/lib/dockless/manifest.json")


def resolve(point: str, mirror: Any) -> str:
    """Symbolic kill points → ``DOCKLESS_TEST_KILL_AT`` values (byte counts from the real assets)."""
    size = lambda p: Path(p).stat().st_size  # noqa: E731
    runc, ctd = size("/usr/sbin/runc"), [size(f"/usr/bin/{n}") for n in ("containerd", "ctr", "containerd-shim-runc-v2")]
    assets = [p for p in mirror.root.rglob("*") if p.name.endswith((".tar.gz", ".tgz", "runc.amd64"))
              and (f"v{mirror.versions['containerd']}/" in str(p) or "containerd" not in p.name)]
    downloaded = sum(size(p) for p in assets if "cri-tools" not in str(p)) + size(next(p for p in assets if "cri-tools" in str(p)))
    symbolic = {
        "download:early": 4_000_000,
        "download:late": downloaded - 2_000_000,
        "extract:mid-runc": runc // 2,
        "extract:mid-containerd": runc + ctd[0] // 2,
        "extract:mid-cni": runc + sum(ctd) + size("/usr/lib/cni/bridge") // 2,
    }
    if point in symbolic:
        return f"{point.split(':')[0]}:{symbolic[point]}"
    return point


def snapshot(root: Path) -> dict[str, Any]:
    """Everything dockless owns under ``root``: paths, kinds, modes, hashes, and the manifest
    without its timestamps (containerd's own data, pids and logs left out)."""
    tree: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(rel == v or rel.startswith(v + "/") for v in VOLATILE):
            continue
        if path.is_symlink():
            tree[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            tree[rel] = "dir"
        else:
            tree[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {oct(path.stat().st_mode & 0o7777)}"
    manifest = json.loads((root / "var/lib/dockless/manifest.json").read_text())
    return {
        "tree": tree,
        "files": {k: {f: v[f] for f in ("sha256", "size", "component", "kind")} for k, v in manifest["files"].items()},
        "components": manifest["components"],
        "records": sorted(json.dumps(r, sort_keys=True) for r in manifest["records"]),
        "dirs": sorted(manifest.get("dirs", [])),
    }


def assert_running(lane: Lane) -> None:
    pid = lane.pid()
    assert pid is not None and alive(pid) and socket_answers(lane.socket)
    config = str(lane.config).encode()
    daemons = [p for p in our_processes(lane.root) if config in cmdline(p)]
    assert daemons == [pid], f"containerd processes of this root: {daemons}, pid file: {pid}"


@pytest.fixture(scope="module")
def conv(mirror: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lane]:
    """One root path for every convergence run (config.toml names it, so hashes compare)."""
    the_lane = make_lane(mirror, tmp_path_factory.mktemp("converge"))
    try:
        yield the_lane
    finally:
        stop_all(the_lane.root)
        shutil.rmtree(the_lane.root, ignore_errors=True)


@pytest.fixture(scope="module")
def reference(conv: Lane, image: Path) -> dict[str, Any]:
    """The end state of an uninterrupted setup (fresh root, cold cache)."""
    wipe(conv.root)
    invoke(conv, "setup", env={"DOCKLESS_CACHE": str(conv.work / "cache-reference")})
    state = snapshot(conv.root)
    assert_running(conv)
    smoke(conv, image)
    return state


@linux_lane
@pytest.mark.parametrize("point", KILL_POINTS)
def test_setup_converges_after_sigkill(conv: Lane, reference: dict[str, Any], image: Path, mirror: Any, point: str) -> None:
    wipe(conv.root)
    env = {"DOCKLESS_CACHE": str(conv.work / f"cache-{point.replace(':', '-')}")}  # cold: downloads happen
    killed = invoke(conv, "setup", check=False, env={**env, "DOCKLESS_TEST_KILL_AT": resolve(point, mirror)})
    assert killed.returncode == -signal.SIGKILL, describe(killed)
    assert "DOCKLESS_TEST_KILL_AT: killed at" in killed.stderr
    invoke(conv, "setup", env=env)
    state = snapshot(conv.root)
    for key in reference:
        assert state[key] == reference[key], key
    assert_running(conv)
    smoke(conv, image)
    shutil.rmtree(conv.work / f"cache-{point.replace(':', '-')}", ignore_errors=True)


# -- Windows, at the command level (FakeWindowsHost) ---------------------------------------------------------
def windows_install(tmp_path: Path, state: Any = None, sections: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """A whole Windows ``setup`` on the fake host; returns (host, settings)."""
    from dockless.settings import load_settings
    from dockless.testing.mirror import windows_mirror
    from dockless.testing.windows import (
        FakeWindowsHost,
        HostState,
        run_setup,
        windows_session,
        windows_settings,
    )

    pins = load_settings({"DOCKLESS_TARGET": "windows"}, cwd=tmp_path).pins.versions
    shas = windows_mirror(tmp_path / "mirror", {k: pins[k] for k in ("containerd", "windows-cni", "crictl", "hns-module-commit")})
    settings = windows_settings(tmp_path, mirror=tmp_path / "mirror", pins=shas, sections=sections)
    host = FakeWindowsHost(state if state is not None else HostState(), fs_root=settings.fs_root)
    session = windows_session(host, settings, cache=tmp_path / "cache")
    run_setup(session)
    assert not [r for r in session.results if r.status == "failed"]
    return host, settings


def win_task(host: Any, settings: Any, tmp_path: Path, task: Any, **flags: Any) -> int:
    """A root task as ``invoke TASK`` runs it, on the fake host: a fresh session bound to its context."""
    from invoke import Exit

    from dockless.namespace import bind_session
    from dockless.testing.windows import windows_session

    bind_session(host, windows_session(host, settings, cache=tmp_path / "cache"))
    try:
        task(host, **flags)
    except Exit as exc:
        return exc.code
    return 0


def test_status_windows_command_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dockless.core_tasks import status

    host, settings = windows_install(tmp_path)
    capsys.readouterr()
    assert win_task(host, settings, tmp_path, status, json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["service"]["state"] == "Running" and report["network"]["hns"]["present"]
    assert {c["name"] for c in report["components"]} >= {"containerd", "hns", "cni-nat", "crictl", "defender"}
    host.state.remove_network("nat")  # after a reboot
    host.state.service.state = "Stopped"
    host.state.pipe_open = False
    assert win_task(host, settings, tmp_path, status, json=True) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["service"]["ok"] and report["network"]["hns"]["present"] is False
    assert any(p.startswith("network: HNS network nat is missing") for p in report["problems"])


def test_doctor_windows_command_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dockless.core_tasks import doctor

    host, settings = windows_install(tmp_path)
    lay_exe = r"C:\Program Files\containerd\bin\containerd.exe"
    capsys.readouterr()
    assert win_task(host, settings, tmp_path, doctor) == 0
    assert "FAIL" not in capsys.readouterr().out

    def broken(pattern: str, fixable: bool) -> str:
        assert win_task(host, settings, tmp_path, doctor) == 1
        out = capsys.readouterr().out
        line = next((f for f in out.splitlines() if f.startswith("FAIL") and re.search(pattern, f)), None)
        assert line is not None and "-> fix: " in line, out
        assert ("doctor --fix does it" in line) == fixable, line
        if fixable:
            host.reset_log()
            assert win_task(host, settings, tmp_path, doctor, fix=True) == 0, capsys.readouterr().out
        capsys.readouterr()
        return line

    host.state.remove_network("nat")  # HNS network missing (after a reboot)
    broken(r"^FAIL  hns: HNS network nat is missing", fixable=True)
    assert host.state.network("nat") is not None and any("New-HnsNetwork" in s for s in host.actions)

    host.state.remove_network("nat")  # HNS network different from the conf
    host.state.add_network("nat", "172.30.0.0/16", "172.30.0.1")
    broken(r"^FAIL  hns: HNS network nat is 172.30.0.0/16 via 172.30.0.1 but 0-containerd-nat.conf has subnet 10.0.0.0/16",
           fixable=True)
    conf = settings.fs_root / "C" / "Program Files" / "containerd" / "cni" / "conf" / "0-containerd-nat.conf"
    assert json.loads(conf.read_text())["ipam"]["subnet"] == "172.30.0.0/16"

    host.state.exclusions.clear()  # Defender exclusion missing
    broken(r"^FAIL  defender: no Defender process exclusion for " + re.escape(lay_exe), fixable=True)
    assert host.state.exclusions == [lay_exe]

    host.state.service.state = "Stopped"  # service not answering on its pipe
    host.state.processes.clear()
    host.state.pipe_open = False
    broken(r"^FAIL  service: service Stopped, nothing answers on \\\\\.\\pipe\\containerd-containerd", fixable=True)
    assert host.state.service.state == "Running" and host.state.pipe_open

    host.state.user_profile = r"C:\Users\dev"  # crictl reads another profile's crictl.yaml
    broken(r"^FAIL  crictl: crictl reads C:\\Users\\dev\\\.crictl\\crictl\.yaml but dockless wrote ", fixable=False)
    host.state.user_profile = r"C:\Users\Administrator"

    crictl_yaml = settings.fs_root / "C" / "Users" / "Administrator" / ".crictl" / "crictl.yaml"
    good = crictl_yaml.read_text()
    crictl_yaml.write_text(good.replace("npipe://./pipe/containerd-containerd", "npipe://./pipe/docker_engine"))
    broken(r"^FAIL  crictl: .*runtime-endpoint is npipe://./pipe/docker_engine", fixable=False)
    crictl_yaml.unlink()
    broken(r"^FAIL  crictl: .*crictl.yaml is missing", fixable=True)
    assert crictl_yaml.read_text() == good

    config = settings.fs_root / "C" / "Program Files" / "containerd" / "config.toml"
    rendered = config.read_bytes()
    config.write_bytes(rendered.decode().encode("utf-16"))  # what PowerShell's Out-File writes
    broken(r"^FAIL  encoding: C:\\Program Files\\containerd\\config.toml is UTF-16LE", fixable=True)
    assert config.read_bytes() == rendered

    pause = "mcr.microsoft.com/oss/kubernetes/pause:3.6-windows-ltsc2022-amd64"  # image newer than the host
    host.state.build = 17763
    settings.sections.setdefault("containerd", {})["sandbox_image"] = pause
    line = broken(r"^FAIL  sandbox-image: .*cannot run on host build 17763", fixable=False)
    assert "sandbox_image" in line


def test_teardown_windows_command_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dockless.core_tasks import teardown

    host, settings = windows_install(tmp_path)
    exe = r"C:\Program Files\containerd\bin\containerd.exe"
    assert host.state.service is not None and host.state.exclusions == [exe] and host.state.network("nat")
    host.reset_log()
    assert win_task(host, settings, tmp_path, teardown, yes=True) == 0
    scripts = host.actions
    order = [next(i for i, s in enumerate(scripts) if needle in s)
             for needle in ("Remove-HnsNetwork", "Remove-MpPreference", "--unregister-service")]
    assert order == sorted(order), scripts  # reverse dependency order
    assert any("Stop-Service containerd" in s for s in scripts[:order[-1] + 1])
    assert host.state.service is None and host.state.exclusions == [] and host.state.network("nat") is None
    assert [p for p in settings.fs_root.rglob("*") if not p.is_dir()] == []
    assert win_task(host, settings, tmp_path, teardown, yes=True) == 0  # again: nothing recorded, nothing done
    assert "nothing to tear down" in capsys.readouterr().out


def test_upgrade_windows_stops_the_service_before_swapping(tmp_path: Path) -> None:
    from dockless.testing.mirror import add_containerd
    from dockless.testing.windows import run_setup, windows_session

    host, settings = windows_install(tmp_path)
    old = str(settings.pins.version("containerd"))
    new = next_patch(old)
    add_containerd(tmp_path / "mirror", new, "windows",
                   {n: b"MZ stand-in " + n.encode() + new.encode() for n in ("containerd.exe", "ctr.exe", "containerd-shim-runhcs-v1.exe")})
    settings.pins = settings.pins.merged({"containerd": new}, "test")
    host.reset_log()
    session = windows_session(host, settings, cache=tmp_path / "cache")
    run_setup(session)
    scripts = host.actions
    stop = next(i for i, s in enumerate(scripts) if s.startswith("Stop-Service containerd\n"))
    start = next(i for i, s in enumerate(scripts) if re.match(r"(Re)?[Ss]tart-Service containerd|Restart-Service", s))
    assert stop < start and host.state.service.state == "Running"
    assert {r.step: r.status for r in session.results}["containerd.install"] == "changed"
    assert session.manifest.components["containerd"]["version"] == new


@linux_lane
def test_reconfigure_killed_before_restart_converges(lane: Lane) -> None:
    """config.toml changed, the run killed before containerd.service: the next run sees that the
    running daemon loaded older files and restarts it."""
    invoke(lane, "setup")
    before = lane.pid()
    (lane.work / "dockless.toml").write_text((lane.work / "dockless.toml").read_text() + '\n[containerd]\nlog_level = "debug"\n')
    killed = invoke(lane, "setup", check=False, env={"DOCKLESS_TEST_KILL_AT": "containerd.config:after"})
    assert killed.returncode == -signal.SIGKILL, describe(killed)
    assert lane.pid() == before and alive(before)  # still the daemon with the old config
    err = invoke(lane, "setup").stderr
    assert re.search(r"^\s*changed containerd.service", err, re.M), err
    after = lane.pid()
    assert after != before and b"debug" in cmdline(after) and socket_answers(lane.socket)
    assert "nothing to change" in invoke(lane, "setup").stderr


def test_teardown_windows_failed_undo_keeps_files_and_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dockless.core_tasks import teardown

    host, settings = windows_install(tmp_path)
    exe = settings.fs_root / "C" / "Program Files" / "containerd" / "bin" / "containerd.exe"
    manifest = settings.fs_root / "C" / "ProgramData" / "dockless" / "manifest.json"
    host.fail("--unregister-service", "containerd: Access is denied.")
    assert win_task(host, settings, tmp_path, teardown, yes=True) == 1
    assert exe.exists() and manifest.exists()  # containerd's files stay while its service may still use them
    assert host.state.exclusions == [] and host.state.network("nat") is None  # the other undos ran
    assert win_task(host, settings, tmp_path, teardown, yes=True) == 0  # run again once the cause is fixed
    assert not exe.exists() and not manifest.exists() and host.state.service is None


def test_doctor_fix_with_nothing_fixable_and_teardown_files_each_file_under_its_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dockless.core_tasks import doctor, teardown

    host, settings = windows_install(tmp_path)
    host.state.user_profile = r"C:\Users\dev"  # a failure doctor --fix cannot fix
    capsys.readouterr()
    assert win_task(host, settings, tmp_path, doctor, fix=True) == 1
    out = capsys.readouterr().out
    assert "FAIL  crictl: crictl reads" in out and "fixing:" not in out and "after the fixes" not in out, out
    assert "nothing here that doctor --fix can fix" in out, out
    host.state.user_profile = r"C:\Users\Administrator"

    crictl_yaml = settings.fs_root / "C" / "Users" / "Administrator" / ".crictl" / "crictl.yaml"
    crictl_yaml.write_text(crictl_yaml.read_text() + "# mine\n")  # edited: teardown keeps it as .bak
    assert win_task(host, settings, tmp_path, teardown, yes=True) == 0
    err = capsys.readouterr().err
    for step, count, comp in (("crictl.config", 1, "crictl"), ("crictl.install", 1, "crictl"),
                              ("cni.config", 1, "cni-nat"), ("containerd.config", 1, "containerd")):
        assert f"  {step}: remove the {count} file(s) dockless wrote for {comp}\n" in err, err
    [backup] = crictl_yaml.parent.glob("crictl.yaml.*.bak")
    assert err.count(str(backup)) == 1 and "backup:" not in err, err  # named once, as it happened


# -- invoke demo: what it leaves behind is what it says ----------------------------------------------------
def run_demo(*args: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    proc = subprocess.run([sys.executable, "-m", "invoke", "demo", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    root = re.search(r"^# mirror \S+ \(Debian binaries as release assets\), root (\S+)$", proc.stdout, re.M)
    work = re.search(r"(/tmp/dockless-demo-\w+)", proc.stdout)
    assert proc.returncode == 0 and root and work, describe(proc)
    return proc, Path(root[1]), Path(work[1])


@linux_lane
def test_demo_stop_removes_everything_it_made() -> None:
    proc, root, work = run_demo("--stop")
    try:
        assert not root.exists() and not work.exists(), describe(proc)
        assert our_processes(root) == []
        assert "invoke status" not in proc.stdout and f"removed {work} and {root}" in proc.stdout, describe(proc)
        if shutil.which("crictl") is None:
            assert "# skipping crictl: no crictl binary" in proc.stdout, describe(proc)
    finally:
        stop_all(root)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


@linux_lane
def test_demo_prints_commands_that_work() -> None:
    proc, root, work = run_demo()
    try:
        status = re.search(r"^done\. containerd for this demo: (.*) invoke status$", proc.stdout, re.M)
        remove = re.search(r"^remove it all: (.*)$", proc.stdout, re.M)
        assert status and remove, describe(proc)
        if shutil.which("crictl") is None:  # the status of a demo without crictl must not miss crictl
            assert "DOCKLESS_DISABLE_PLUGINS=crictl" in status[1], status[1]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
        shown = subprocess.run(f"{status[1]} {sys.executable} -m invoke status", shell=True, cwd=REPO, env=clean,
                               capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, describe(shown)
        removed = subprocess.run(remove[1].replace("invoke teardown", f"{sys.executable} -m invoke teardown"),
                                 shell=True, cwd=REPO, env=clean, capture_output=True, text=True, timeout=300)
        assert removed.returncode == 0, describe(removed)
        assert not root.exists() and not work.exists() and our_processes(root) == []
    finally:
        stop_all(root)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
