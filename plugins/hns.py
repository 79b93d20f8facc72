"""HNS: the Windows NAT network that the ``nat`` CNI plugin attaches pods to.

The built-in HostNetworkingService module has no ``New-HnsNetwork``; dockless downloads
microsoft/SDN's ``hns.psm1`` pinned to a commit (``hns-module-commit``) and verified by the sha256
pinned in versions.toml. An existing network of the same name is reused (its prefix and gateway
then go into the CNI conf); a missing one is created (again after a reboot, field case C09).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, Install, PowerShell, StepFailed
from dockless.model import Component, Setting, Step
from dockless.namespace import run_step
from dockless.netcheck import NetworkError, hns_network_from_probe, host_prefixes_from_probe, validate_nat
from dockless.powershell import quote
from dockless.session import Session

MODULE_PATH = "Kubernetes/windows/hns.psm1"


def network_probe(name: str) -> str:
    return (
        "Import-Module HostNetworkingService -ErrorAction SilentlyContinue\n"
        f"$net = @(Get-HnsNetwork | Where-Object {{ $_.Name -eq {quote(name)} }} | Select-Object Name, Type, Id, Subnets)\n"
        "$ips = @(Get-NetIPAddress -AddressFamily IPv4 | Select-Object IPAddress, PrefixLength, InterfaceAlias)\n"
        "[ordered]@{ network = $net; interfaces = $ips }\n"
    )


@dataclass(frozen=True)
class NatNetwork:
    """The network the CNI conf must describe: what exists on the host, else the settings."""

    name: str
    subnet: str
    gateway: str
    exists: bool


def module_file(session: Session) -> Any:
    return session.layout.dockless_dir / "hns.psm1"


def plan_module(session: Session) -> list[Action]:
    commit = session.settings.pins.commit("hns-module-commit")
    dest = module_file(session)
    if session.installed("hns", commit, [dest]):
        return []
    url = f"https://github.com/microsoft/SDN/raw/{commit}/{MODULE_PATH}"
    art = session.artifact("hns-module-commit", commit, [url], [None], sha_key=f"hns.psm1@{commit}")
    return [Install(art, dest.parent, rename=dest.name)]


def effective_network(session: Session) -> NatNetwork:
    """Validate the settings (C08) and reconcile them with an existing network."""
    cfg = session.config("hns")
    probe: Any = session.probe("hns.network") or {}
    if "error" in probe:
        raise StepFailed(f"could not query HNS: {probe['error']}")
    interfaces = probe.get("interfaces") if probe else session.settings.assumed_host.get("interfaces", [])
    prefixes = host_prefixes_from_probe(interfaces or [], exclude_aliases=(f"vEthernet ({cfg['name']})",))
    existing = hns_network_from_probe(probe.get("network"), name=cfg["name"]) if probe else None
    try:
        if existing is not None:
            net, gw = existing.validate(host_prefixes=prefixes)
            return NatNetwork(cfg["name"], str(net), str(gw), True)
        net, gw = validate_nat(cfg["subnet"], cfg["gateway"], host_prefixes=prefixes)
    except NetworkError as exc:
        raise StepFailed(str(exc)) from None
    return NatNetwork(cfg["name"], str(net), str(gw), False)


def plan_network(session: Session) -> list[Action]:
    net = effective_network(session)
    if net.exists:
        return []
    script = (
        f"Import-Module {quote(module_file(session))} -DisableNameChecking\n"
        f"New-HnsNetwork -Type NAT -Name {quote(net.name)} -AddressPrefix {quote(net.subnet)} -Gateway {quote(net.gateway)} | Out-Null\n"
    )
    return [PowerShell(script, f"create HNS network {net.name} {net.subnet} via {net.gateway}",
                       record=("hns-network", net.name))]


def undo_network(session: Session) -> list[Action]:
    name = session.config("hns")["name"]
    if not session.manifest.has_record("hns-network", name):
        return []
    script = f"Get-HnsNetwork | Where-Object {{ $_.Name -eq {quote(name)} }} | Remove-HnsNetwork\n"
    return [PowerShell(script, f"remove HNS network {name}")]


def module(c: Context) -> None:
    """Download the pinned hns.psm1 (sha256-verified) that can create HNS networks."""
    run_step(c, "hns.module")


def network(c: Context) -> None:
    """Ensure the HNS NAT network exists: reuse a valid one, create a missing one."""
    run_step(c, "hns.network")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name="hns", platforms=("windows",), requires=("preflight",),
        steps=(
            Step("module", plan_module, module, platforms=("windows",)),
            Step("network", plan_network, network, platforms=("windows",), probe=network_probe("nat"), undo=undo_network),
        ),
        settings={
            "name": Setting("nat", "HNS network name (the nat CNI conf uses the same)"),
            "subnet": Setting("10.0.0.0/16", "NAT subnet (network address/prefix)"),
            "gateway": Setting("10.0.0.1", "gateway inside the subnet"),
        },
        description="HNS NAT network",
    ))
