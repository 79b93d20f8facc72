"""Calico for Windows as the ``cni`` provider ``calico`` (selected with ``DOCKLESS_CNI=calico``).

What it does on top of dockless's containerd (three steps, run as ``cni.install``, ``cni.network``,
``cni.config``):

* **install**: downloads the Calico release asset ``calico-windows-v{V}.zip`` from
  ``github.com/projectcalico/calico/releases`` (checked against the release's ``SHA256SUMS``, or
  a sha256 pinned in versions.toml ``[sha256]`` under the asset name) and installs the CNI
  plugins ``calico.exe`` and ``calico-ipam.exe`` from ``CalicoWindows/cni/`` into containerd's
  CNI bin dir, and ``CalicoWindows/libs/hns/hns.psm1`` (the module that has ``New-HnsNetwork``)
  into ``<dockless dir>\\calico``;
* **network**: the HNS network Calico's own node service creates before anything else: the
  ``External`` network (``Overlay`` with the VSID 9999 subnet policy for VXLAN, plus the UDP 4789
  firewall rule; ``L2Bridge`` for ``windows-bgp``), on the reserved ``192.168.255.0/30``. It
  removes the ``nat`` network that dockless created for ``cni-nat`` (swap): Calico uses no
  ``nat`` network;
* **config**: ``10-calico.conf`` from the packaged template, the only CNI conf dockless keeps in
  the conf dir (containerd reads only the first one).

Calico's per-node agents (calico-node, felix: the ``CalicoNode``/``CalicoFelix`` services) and
the datastore (Kubernetes or etcd) are outside what dockless sets up; the conf points at them
through ``[calico] datastore``, ``kubeconfig`` and ``etcd_endpoints``.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, Install, PowerShell, StepFailed
from dockless.cni import conf_actions
from dockless.model import Component, Setting, Step
from dockless.namespace import run_step
from dockless.powershell import quote
from dockless.render import render
from dockless.versions import Version, VersionError

if TYPE_CHECKING:  # annotations only: plugins load at every `invoke --list`
    from dockless.session import Session

NAME = "calico"
REPO = "projectcalico/calico"
DEFAULT_VERSION = "3.30.4"
ARCHIVE_ROOT = "CalicoWindows"
CNI_BINARIES = ("calico.exe", "calico-ipam.exe")
CONF = "10-calico.conf"
TEMPLATES = Path(str(files("dockless_calico") / "templates" / "calico"))

# Calico's node service creates this network first (the vSwitch); pods then join the "Calico"
# network that the CNI plugin creates from the conf (``windows_use_single_network``).
EXTERNAL = "External"
EXTERNAL_PREFIX = "192.168.255.0/30"
EXTERNAL_GATEWAY = "192.168.255.1"
EXTERNAL_VSID = 9999
VXLAN_PORT = 4789
NETWORK_TYPE = {"vxlan": "Overlay", "windows-bgp": "L2Bridge"}
MIN_VNI = 4096  # Windows does not support a VXLAN VNI below 4096

NETWORK_PROBE = (
    "Import-Module HostNetworkingService -ErrorAction SilentlyContinue\n"
    "[ordered]@{ networks = @(Get-HnsNetwork | Select-Object Name, Type) }\n"
)


# -- settings ----------------------------------------------------------------------------------------
SETTINGS = {
    "version": Setting(DEFAULT_VERSION, "Calico release to install (MAJOR.MINOR.PATCH; its calico-windows zip)"),
    "mode": Setting("vxlan", "networking backend: vxlan (Overlay network) or windows-bgp (L2Bridge)", ("vxlan", "windows-bgp")),
    "vni": Setting(4096, "VXLAN VNI; must match Felix's VXLANVNI on the Linux nodes, at least 4096 on Windows"),
    "mac_prefix": Setting("0E-2A", "prefix of the MAC addresses of pod vNICs (two hex bytes, XX-XX)"),
    "ipam": Setting("calico-ipam", "IPAM plugin: calico-ipam (needed by vxlan) or host-local", ("calico-ipam", "host-local")),
    "service_cidr": Setting("10.96.0.0/12", "Kubernetes service CIDR: excluded from OutBoundNAT, routed through the overlay"),
    "dns_servers": Setting(["10.96.0.10"], "DNS servers written into the conf (cluster DNS)"),
    "dns_search": Setting(["svc.cluster.local"], "DNS search suffixes"),
    "datastore": Setting("kubernetes", "where Calico keeps its state", ("kubernetes", "etcdv3")),
    "kubeconfig": Setting("", "kubeconfig for the kubernetes datastore (empty: <dockless dir>\\calico\\calico-kube-config)"),
    "etcd_endpoints": Setting("", "etcd endpoints for the etcdv3 datastore, e.g. https://10.0.0.5:2379"),
    "nodename": Setting("", "this node's name; written to the nodename file the conf names (empty: left to calico-node)"),
    "loopback_dsr": Setting(False, "windows_loopback_DSR: true on hosts with DSR support (Windows Server 2022 and newer)", (True, False)),
    "log_level": Setting("info", "log level of the calico CNI plugin", ("debug", "info", "warning", "error")),
}


def problems(cfg: dict[str, Any]) -> list[str]:
    """What is wrong with a merged ``[calico]`` section, one line each (pure: used by
    :func:`dockless_check_settings` and by the tests)."""
    out: list[str] = []
    try:
        Version.parse(str(cfg["version"]), "[calico] version")
    except VersionError as exc:
        out.append(str(exc))
    if isinstance(cfg["vni"], bool) or not isinstance(cfg["vni"], int) or cfg["vni"] < MIN_VNI:
        out.append(f"[calico] vni = {cfg['vni']!r}: Windows needs a VXLAN VNI of at least {MIN_VNI} "
                   f"(set Felix's VXLANVNI to the same value)")
    if cfg["mode"] == "vxlan" and cfg["ipam"] != "calico-ipam":
        out.append(f"[calico] ipam = {cfg['ipam']!r}: Calico VXLAN needs ipam = \"calico-ipam\"")
    if not re.fullmatch(r"[0-9A-Fa-f]{2}-[0-9A-Fa-f]{2}", str(cfg["mac_prefix"])):
        out.append(f"[calico] mac_prefix = {cfg['mac_prefix']!r}: write two hex bytes, e.g. \"0E-2A\"")
    try:
        ipaddress.ip_network(str(cfg["service_cidr"]), strict=True)
    except ValueError as exc:
        out.append(f"[calico] service_cidr = {cfg['service_cidr']!r}: {exc}")
    servers = cfg["dns_servers"]
    if not isinstance(servers, list) or not servers:
        out.append("[calico] dns_servers must be a non-empty list, e.g. [\"10.96.0.10\"]")
    else:
        for server in servers:
            try:
                ipaddress.ip_address(str(server))
            except ValueError:
                out.append(f"[calico] dns_servers: {server!r} is not an IP address")
    if cfg["datastore"] == "etcdv3" and not cfg["etcd_endpoints"]:
        out.append("[calico] datastore = \"etcdv3\" needs etcd_endpoints = \"https://HOST:2379,...\"")
    return out


def version(session: Session) -> Version:
    return Version.parse(str(session.config(NAME)["version"]), "[calico] version")


def calico_dir(session: Session) -> PurePath:
    return session.layout.dockless_dir / "calico"


# -- install -----------------------------------------------------------------------------------------
def asset_url(v: Version) -> str:
    return f"https://github.com/{REPO}/releases/download/{v.tag}/calico-windows-{v.tag}.zip"


def checksums_url(v: Version) -> str:
    """Every Calico release since 2022 (v3.21.5, v3.22.2, v3.23) attaches ``SHA256SUMS``:
    ``<hex>  <asset>`` lines for all of its assets."""
    return f"https://github.com/{REPO}/releases/download/{v.tag}/SHA256SUMS"


def installed_files(session: Session) -> list[PurePath]:
    return [session.layout.cni_bin_dir / b for b in CNI_BINARIES] + [calico_dir(session) / "hns.psm1"]


def plan_install(session: Session) -> list[Action]:
    v = version(session)
    if session.installed(NAME, str(v), installed_files(session)):
        return []
    url = asset_url(v)
    art = session.artifact(NAME, str(v), [url], [checksums_url(v)])
    return [InstallTwice(art, session.layout.cni_bin_dir, tuple(f"{ARCHIVE_ROOT}/cni/{b}" for b in CNI_BINARIES),
                         flatten=True, also=((calico_dir(session), (f"{ARCHIVE_ROOT}/libs/hns/hns.psm1",)),))]


@dataclass
class InstallTwice(Install):
    """One download, files into two folders: the CNI plugins where containerd looks for them,
    the HNS module beside dockless's other helpers (``setup`` prefetches each artifact once)."""

    also: tuple[tuple[PurePath, tuple[str, ...]], ...] = ()

    def describe(self) -> str:
        more = "; ".join(f"{', '.join(m)} into {d}" for d, m in self.also)
        return super().describe() + (f"; {more}" if more else "")

    def run(self, session: Session, component: str) -> None:
        super().run(session, component)
        for dest, members in self.also:
            session.install(replace(self, dest=dest, members=members, also=()), component)


# -- the HNS network ---------------------------------------------------------------------------------
@dataclass
class RemoveNetwork(PowerShell):
    """Remove an HNS network dockless created for another provider, and forget its record."""

    forget: tuple[str, str] = ("", "")

    def run(self, session: Session, component: str) -> None:
        super().run(session, component)
        if not session.dry:
            session.manifest.remove_record(*self.forget)


@dataclass
class _Forget(Action):
    """A recorded network that is already gone: only the manifest entry goes."""

    name: str

    def describe(self) -> str:
        return f"forget HNS network {self.name} (already gone)"

    def run(self, session: Session, component: str) -> None:
        if not session.dry:
            session.manifest.remove_record("hns-network", self.name)


def _networks(probe: Any) -> list[dict[str, Any]]:
    """``networks`` of the probe, whatever shape Windows PowerShell 5.1 gave the array."""
    nets = probe.get("networks") if isinstance(probe, dict) else None
    if isinstance(nets, dict) and "value" in nets:
        nets = nets["value"]
    if isinstance(nets, dict):
        nets = [nets]
    return [n for n in nets or [] if isinstance(n, dict)]


def create_script(session: Session, mode: str) -> str:
    module = quote(calico_dir(session) / "hns.psm1")
    kind = NETWORK_TYPE[mode]
    new = (f"New-HnsNetwork -Type {kind} -Name {quote(EXTERNAL)} -AddressPrefix {quote(EXTERNAL_PREFIX)} "
           f"-Gateway {quote(EXTERNAL_GATEWAY)}")
    script = f"Import-Module {module} -DisableNameChecking\n"
    if mode == "vxlan":
        script += (f"New-NetFirewallRule -Name 'OverlayTraffic{VXLAN_PORT}UDP' -DisplayName 'Overlay Traffic {VXLAN_PORT} UDP' "
                   f"-Protocol UDP -LocalPort {VXLAN_PORT} -Action Allow -Enabled True -ErrorAction SilentlyContinue | Out-Null\n")
        new += f" -SubnetPolicies @(@{{ Type = 'VSID'; VSID = {EXTERNAL_VSID} }})"
    return script + new + " | Out-Null\n"


def remove_script(name: str) -> str:
    return f"Get-HnsNetwork | Where-Object {{ $_.Name -eq {quote(name)} }} | Remove-HnsNetwork\n"


def plan_network(session: Session) -> list[Action]:
    mode = session.config(NAME)["mode"]
    probe: Any = session.probe("cni.network")
    if isinstance(probe, dict) and "error" in probe:
        raise StepFailed(f"could not query HNS: {probe['error']}")
    networks = {str(n.get("Name")): str(n.get("Type")) for n in _networks(probe)}
    actions: list[Action] = []
    # the swap: networks dockless created for another provider (cni-nat's ``nat``) go
    for rec in session.manifest.records:
        if rec["kind"] == "hns-network" and rec["component"] != NAME and rec["value"] != EXTERNAL:
            if probe is None or rec["value"] in networks:
                actions.append(RemoveNetwork(remove_script(rec["value"]),
                                             f"remove HNS network {rec['value']} (made for {rec['component']}; Calico uses none)",
                                             forget=("hns-network", rec["value"])))
            else:
                actions.append(_Forget(rec["value"]))
    wanted = NETWORK_TYPE[mode]
    existing = networks.get(EXTERNAL)
    if existing is not None:
        if existing.lower() != wanted.lower():
            raise StepFailed(f"HNS network {EXTERNAL} is {existing}, Calico {mode} needs {wanted}: remove it "
                             f"(Get-HnsNetwork | Where-Object Name -eq {EXTERNAL} | Remove-HnsNetwork) or set [calico] mode")
        return actions
    actions.append(PowerShell(create_script(session, mode),
                              f"create HNS network {EXTERNAL} ({wanted}, {EXTERNAL_PREFIX}) for Calico {mode}",
                              record=("hns-network", EXTERNAL)))
    return actions


def undo_network(session: Session) -> list[Action]:
    if not session.manifest.has_record("hns-network", EXTERNAL):
        return []
    return [RemoveNetwork(remove_script(EXTERNAL), f"remove HNS network {EXTERNAL}", forget=("hns-network", EXTERNAL))]


# -- the CNI conf --------------------------------------------------------------------------------------
def render_conf(session: Session) -> bytes:
    cfg = session.config(NAME)
    base = calico_dir(session)
    content = render(
        TEMPLATES, f"{CONF}.j2",
        name="Calico",
        mode="vxlan" if cfg["mode"] == "vxlan" else "",
        mac_prefix=cfg["mac_prefix"],
        vni=int(cfg["vni"]),
        log_level=cfg["log_level"],
        loopback_dsr=bool(cfg["loopback_dsr"]),
        dns_servers=list(cfg["dns_servers"]),
        dns_search=list(cfg["dns_search"]),
        nodename_file=str(base / "nodename"),
        datastore=cfg["datastore"],
        etcd_endpoints=cfg["etcd_endpoints"],
        kubeconfig=cfg["kubeconfig"] or str(base / "calico-kube-config"),
        ipam=cfg["ipam"],
        service_cidr=cfg["service_cidr"],
    )
    try:
        json.loads(content)
    except ValueError as exc:  # a template bug, never the user's: fail before writing
        raise StepFailed(f"{CONF}.j2 rendered invalid JSON ({exc})") from None
    return content


def plan_config(session: Session) -> list[Action]:
    actions = conf_actions(session, NAME, CONF, render_conf(session))
    nodename = session.config(NAME)["nodename"]
    if nodename:
        actions += session.desired_file(calico_dir(session) / "nodename", str(nodename).encode("utf-8"))
    return actions


# -- tasks (module-level functions: their docstrings are the --help) -----------------------------------
def install(c: Context) -> None:
    """Download Calico for Windows (sha256-verified) and install calico.exe, calico-ipam.exe."""
    run_step(c, "cni.install")


def network(c: Context) -> None:
    """Create the HNS network Calico needs (External: Overlay for vxlan); remove dockless's nat network."""
    run_step(c, "cni.network")


def config(c: Context) -> None:
    """Write 10-calico.conf, the only CNI conf dockless keeps in the conf dir."""
    run_step(c, "cni.config")


# -- hooks -----------------------------------------------------------------------------------------
@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name=NAME, role="cni", platforms=("windows",), requires=("containerd",),
        steps=(
            Step("install", plan_install, install, platforms=("windows",)),
            Step("network", plan_network, network, platforms=("windows",), probe=NETWORK_PROBE, undo=undo_network),
            Step("config", plan_config, config, platforms=("windows",)),
        ),
        settings=SETTINGS,
        templates=TEMPLATES,
        description="Calico for Windows: CNI plugins, HNS network, conf",
    ))


@hookimpl
def dockless_check_settings(settings: dict[str, dict[str, Any]], target: str) -> list[str]:
    if NAME not in settings:  # not the selected cni provider: nothing to check
        return []
    return problems(settings[NAME])
