"""The example plugins, installed as a user installs them (issue 7, "What it must show" #1 and #3).

CI installs them into the test venv (``.ci/run``: ``pip install -e examples/<name>`` for every
example); the tests here run ``invoke`` as a subprocess so the plugins come in through the
``dockless`` entry-point group, exactly as for a user. The Linux-lane test registers a second
Linux ``cni`` provider (Debian's CNI ``ptp`` plugin) from a throwaway distribution on
``PYTHONPATH`` and swaps to it and back on a real containerd.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

needs_calico = pytest.mark.skipif(
    importlib.util.find_spec("dockless_calico") is None,
    reason="the calico example is not installed: pip install -e examples/dockless-calico")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without DOCKLESS_* (and an empty dockless.toml), plus ``extra``."""
    config = tmp_path / "empty-dockless.toml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    env.update({"DOCKLESS_CONFIG": str(config), "DOCKLESS_CACHE": str(tmp_path / "cache")}, **extra)
    return env


def run_invoke(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, describe(proc)
    return proc


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    args = " ".join(map(str, proc.args)) if isinstance(proc.args, list) else str(proc.args)
    return f"`{args}` exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


# -- the calico example through the entry point -------------------------------------------------------
@needs_calico
def test_selected_calico_plan_has_calico_and_no_nat(tmp_path: Path) -> None:
    out = run_invoke(clean_env(tmp_path, DOCKLESS_CNI="calico"), "plan", "--target", "windows", "--json").stdout
    plan = json.loads(out)
    tasks = [e["task"] for e in plan]
    assert [t for t in tasks if t.startswith("cni.")] == ["cni.install", "cni.network", "cni.config"]
    assert not [t for t in tasks if t.startswith("hns.")]
    by_task = {e["task"]: e for e in plan}
    assert any("calico-windows-v3.30.4.zip" in c for c in by_task["cni.install"]["changes"])
    assert any("New-HnsNetwork -Type Overlay -Name 'External'" in c for c in by_task["cni.network"]["commands"])
    assert [Path(f["path"].replace("\\", "/")).name for f in by_task["cni.config"]["files"]] == ["10-calico.conf"]
    assert "0-containerd-nat.conf" not in out and "nat.exe" not in out and "-Type NAT" not in out


@needs_calico
def test_without_selection_the_plan_is_byte_for_byte_the_plan_without_the_package(tmp_path: Path) -> None:
    installed = run_invoke(clean_env(tmp_path), "plan", "--target", "windows", "--json").stdout
    disabled = run_invoke(clean_env(tmp_path, DOCKLESS_DISABLE_PLUGINS="calico"), "plan", "--target", "windows", "--json").stdout
    assert installed == disabled
    assert "cni.network" not in installed and "hns.network" in installed


@needs_calico
def test_invoke_plugins_lists_the_installed_examples(tmp_path: Path) -> None:
    def rows(out: str) -> dict[str, list[str]]:
        table = out.split("\nsettings (")[0]
        return {ln.split()[2]: ln.split() for ln in table.splitlines() if ln.startswith("  ") and len(ln.split()) >= 6}

    default = rows(run_invoke(clean_env(tmp_path, DOCKLESS_TARGET="windows"), "plugins").stdout)
    assert default["calico"][:5] == ["calico", "dockless-calico==0.1.0", "calico", "cni", "windows"]
    assert " ".join(default["calico"][5:]) == "blocked: cni is cni-nat"
    chosen = run_invoke(clean_env(tmp_path, DOCKLESS_TARGET="windows", DOCKLESS_CNI="calico"), "plugins", "--settings").stdout
    table = rows(chosen)
    assert table["calico"][-1] == "active"
    assert " ".join(table["cni-nat"][5:]) == "blocked: cni is calico"
    assert " ".join(table["hns"][5:]) == "blocked: only needed by cni-nat"
    assert '[calico] mode = "vxlan"  (one of: "vxlan", "windows-bgp")' in chosen
    if importlib.util.find_spec("dockless_nerdctl") is not None:
        assert table["nerdctl"][:3] == ["nerdctl", "dockless-nerdctl==0.1.0", "nerdctl"]
        assert " ".join(table["nerdctl"][5:]) == "not for windows"


@needs_calico
def test_calico_settings_problems_stop_plan_in_one_line_each(tmp_path: Path) -> None:
    config = tmp_path / "dockless.toml"
    config.write_text('cni = "calico"\n\n[calico]\nvni = 100\nipam = "host-local"\n')
    env = clean_env(tmp_path, DOCKLESS_CONFIG=str(config))
    proc = subprocess.run([sys.executable, "-m", "invoke", "plan", "--target", "windows"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, describe(proc)
    lines = proc.stderr.strip().splitlines()
    assert lines == ["calico: [calico] vni = 100: Windows needs a VXLAN VNI of at least 4096 (set Felix's VXLANVNI to the same value)",
                     "calico: [calico] ipam = 'host-local': Calico VXLAN needs ipam = \"calico-ipam\""], describe(proc)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if (p / "tests").is_dir()))
def test_example_suite_passes_with_the_shipped_fixtures(example: str) -> None:
    """Each example's own tests use the ``dockless.testing`` fixtures (pytest11 entry point)."""
    package = "dockless_" + example.removeprefix("dockless-")
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"pip install -e examples/{example}")
    if importlib.util.find_spec("dockless.testing.fixtures") is None or not _fixtures_plugin_installed():
        pytest.skip("dockless is not installed (pip install -e .): its pytest11 fixtures are not registered")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / example / "tests")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, describe(proc)
    assert " passed" in proc.stdout.strip().splitlines()[-1]


def _fixtures_plugin_installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.value == "dockless.testing.fixtures" for ep in entry_points(group="pytest11"))


# -- Linux lane: swap cni-bridge for a ptp provider and back, on a real containerd --------------------------
PTP_PLUGIN = '''
"""A second bridge-type cni provider for Linux, Debian's CNI ``ptp`` plugin (a test plugin)."""
import json

from dockless import hookimpl
from dockless.actions import Install
from dockless.cni import conf_actions
from dockless.model import Component, Step
from dockless.namespace import run_step

PLUGINS = ("ptp", "host-local", "loopback", "portmap")
CONF = "20-dockless-ptp.conflist"
SUBNET = "10.89.0.0/24"


def plan_install(session):
    v = session.settings.pins.version("cni-plugins")
    if session.installed("cni-ptp", str(v), [session.layout.cni_bin_dir / p for p in PLUGINS]):
        return []
    url = (f"https://github.com/containernetworking/plugins/releases/download/{v.tag}/"
           f"cni-plugins-linux-amd64-{v.tag}.tgz")
    art = session.artifact("cni-plugins", str(v), [url], [url + ".sha256"])
    return [Install(art, session.layout.cni_bin_dir, PLUGINS, flatten=True)]


def conf():
    return {"cniVersion": "1.0.0", "name": "dockless-ptp", "plugins": [
        {"type": "ptp", "ipMasq": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def plan_config(session):
    return conf_actions(session, "cni-ptp", CONF, (json.dumps(conf(), indent=2) + "\\n").encode())


def install(c):
    """Install the CNI ptp plugin."""
    run_step(c, "cni.install")


def config(c):
    """Write the ptp conflist: the only conf dockless keeps."""
    run_step(c, "cni.config")


@hookimpl
def dockless_register_components(registry):
    registry.add(Component(
        name="cni-ptp", role="cni", platforms=("linux",), requires=("containerd",),
        steps=(Step("install", plan_install, install, platforms=("linux",)),
               Step("config", plan_config, config, platforms=("linux",)))))
'''
SMOKE_IMAGE = "docker.io/library/busybox:dockless"
LANE_NEEDS = {"/usr/bin/containerd": "containerd", "/usr/sbin/runc": "runc",
              "/usr/lib/cni/ptp": "containernetworking-plugins", "/bin/busybox": "busybox-static"}
_lane_missing = sorted({pkg for path, pkg in LANE_NEEDS.items() if not Path(path).exists()})


@dataclass
class SwapLane:
    root: Path
    env: dict[str, str]
    crictl: Path | None

    @property
    def conf_dir(self) -> Path:
        return self.root / "etc" / "cni" / "net.d"

    @property
    def bin_dir(self) -> Path:
        return self.root / "opt" / "cni" / "bin"

    def confs(self) -> list[str]:
        return sorted(p.name for p in self.conf_dir.iterdir())


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        if stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"]):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def stop_lane(root: Path) -> None:
    """Stop the containerd this test started under ``root`` and its shims (only processes whose
    command line names the root), unmount what is left under it, delete it."""
    marker = str(root).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = _cmdline(int(entry.name))
            if args and (args[0].endswith(b"containerd") or b"containerd-shim" in args[0]) and any(marker in a for a in args):
                _stop(int(entry.name))
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mnt in sorted((m for m in mounts if m == str(root) or m.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def swap_lane(linux_mirror_server: Any, tmp_path: Path) -> Iterator[SwapLane]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "dockless_ptp_test_plugin.py").write_text(textwrap.dedent(PTP_PLUGIN))
    info = site / "dockless_ptp_test-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dockless-ptp-test\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[dockless]\ncni-ptp = dockless_ptp_test_plugin\n")
    config = tmp_path / "dockless.toml"
    config.write_text("[versions]\n" + "".join(f'{k} = "{v}"\n' for k, v in linux_mirror_server.versions.items()))
    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="dl"))  # unix socket paths must stay short
    env = clean_env(tmp_path, DOCKLESS_TARGET="linux", DOCKLESS_ROOT=str(root), DOCKLESS_SERVICE="process",
                    DOCKLESS_MIRROR=linux_mirror_server.url, DOCKLESS_CONFIG=str(config),
                    PYTHONPATH=os.pathsep.join(filter(None, [str(site), str(REPO), os.environ.get("PYTHONPATH")])))
    if linux_mirror_server.crictl is None:
        env["DOCKLESS_DISABLE_PLUGINS"] = "crictl"
    try:
        yield SwapLane(root, env, linux_mirror_server.crictl)
    finally:
        stop_lane(root)


def ptp_add_works(lane: SwapLane, tmp_path: Path) -> str:
    """Run the installed ptp plugin with the conf dockless wrote (first plugin of the list) in a
    fresh network namespace: ADD must hand out an address from the conf's subnet; then DEL."""
    conflist = json.loads((lane.conf_dir / "20-dockless-ptp.conflist").read_text())
    netconf = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **conflist["plugins"][0]}
    netconf["ipMasq"] = False  # no iptables rules on the test machine
    netconf["ipam"] = {**netconf["ipam"], "dataDir": str(tmp_path / "ipam")}
    ns = f"dl{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    env = {"CNI_CONTAINERID": ns, "CNI_NETNS": f"/var/run/netns/{ns}", "CNI_IFNAME": "eth0",
           "CNI_PATH": str(lane.bin_dir), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    try:
        add = subprocess.run([str(lane.bin_dir / "ptp")], input=json.dumps(netconf), capture_output=True, text=True,
                             env={**env, "CNI_COMMAND": "ADD"}, timeout=60)
        assert add.returncode == 0, describe(add)
        address = json.loads(add.stdout)["ips"][0]["address"]
        subprocess.run([str(lane.bin_dir / "ptp")], input=json.dumps(netconf), capture_output=True, text=True,
                       env={**env, "CNI_COMMAND": "DEL"}, timeout=60)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return address


@pytest.mark.linux_lane
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="the Linux lane starts containerd: needs root on Linux")
@pytest.mark.skipif(bool(_lane_missing), reason=f"needs Debian packages: apt-get install -y {' '.join(_lane_missing)}")
def test_swap_cni_bridge_for_a_ptp_provider_and_back(swap_lane: SwapLane, tmp_path: Path) -> None:
    from dockless.testing.images import busybox_oci

    lane = swap_lane
    first = run_invoke(lane.env, "setup")
    assert lane.confs() == ["10-dockless-bridge.conflist"], describe(first)
    run_invoke(lane.env, "image.import", str(busybox_oci(tmp_path / "busybox.tar", ref=SMOKE_IMAGE)))
    assert run_invoke(lane.env, "smoke", "--image", SMOKE_IMAGE).stdout.strip() == "hello"

    ptp_env = {**lane.env, "DOCKLESS_CNI": "cni-ptp"}
    plugins = run_invoke(ptp_env, "plugins").stdout
    assert "dockless-ptp-test==0.0.1" in plugins and "blocked: cni is cni-ptp" in plugins
    swapped = run_invoke(ptp_env, "setup")
    assert lane.confs() == ["20-dockless-ptp.conflist"], describe(swapped)  # only the new conf is active
    assert "remove " in swapped.stderr and "10-dockless-bridge.conflist" in swapped.stderr
    assert (lane.bin_dir / "ptp").is_file()
    assert ipaddress.ip_interface(ptp_add_works(lane, tmp_path)).ip in ipaddress.ip_network("10.89.0.0/24")
    if lane.crictl is not None:
        info = subprocess.run([str(lane.root / "usr" / "local" / "bin" / "crictl"), "--config",
                               str(lane.root / "etc" / "crictl.yaml"), "info"], capture_output=True, text=True, timeout=60)
        assert info.returncode == 0 and "dockless-ptp" in info.stdout, describe(info)
    assert run_invoke(ptp_env, "smoke", "--image", SMOKE_IMAGE).stdout.strip() == "hello"  # containerd still runs containers
    again = run_invoke(ptp_env, "setup")
    assert "nothing to change" in again.stderr, describe(again)

    back = run_invoke(lane.env, "setup")  # no selection: the built-in default again
    assert lane.confs() == ["10-dockless-bridge.conflist"], describe(back)
    assert run_invoke(lane.env, "smoke", "--image", SMOKE_IMAGE).stdout.strip() == "hello"
