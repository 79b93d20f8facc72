"""HNS: the Windows NAT network that the ``nat`` CNI plugin attaches pods to.

The built-in HostNetworkingService module has no ``New-HnsNetwork``; dockless downloads
microsoft/SDN's ``hns.psm1`` pinned to a commit (``hns-module-commit``) and verified by the sha256
pinned in versions.toml. An existing network of the same name is reused (its prefix and gateway
then go into the CNI conf); a missing one is created (again after a reboot, field case C09).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, Install, PowerShell, StepFailed
from dockless.model import Component, Setting, Step, non_empty
from dockless.namespace import run_step
from dockless.netcheck import (
    NetworkError,
    hns_network_from_probe,
    host_prefixes_from_probe,
    validate_nat,
)
from dockless.powershell import quote

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
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


def recorded_network(session: Session, name: str) -> tuple[str, str] | None:
    """Subnet and gateway of network ``name`` as a CNI conf dockless wrote records them, when the
    user set neither in dockless.toml: a network that is gone (NAT networks do not survive every
    reboot, field case C09) is re-created exactly as the conf names it, as the nat plugin itself
    would at the next pod start, instead of moving the pods to the default range."""
    given = session.settings.section("hns")
    if "subnet" in given or "gateway" in given or not session.settings.native:
        return None
    conf_dir = session.layout.cni_conf_dir
    for path in sorted(session.manifest.files):
        target = conf_dir.__class__(path)
        if target.parent != conf_dir or session.manifest.file_state(path, session.local(target)) != "ours":
            continue
        try:
            conf = json.loads(session.local(target).read_text(encoding="utf-8"))
            routes = conf["ipam"].get("routes") or [{}]
            if conf.get("type") == "nat" and conf.get("name") == name and conf["ipam"]["subnet"] and routes[0]["gw"]:
                return str(conf["ipam"]["subnet"]), str(routes[0]["gw"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
            continue
    return None


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
        subnet, gateway = recorded_network(session, cfg["name"]) or (cfg["subnet"], cfg["gateway"])
        net, gw = validate_nat(subnet, gateway, host_prefixes=prefixes)
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
            "name": Setting("nat", "HNS network name (the nat CNI conf uses the same)", kind=str, check=non_empty),
            "subnet": Setting("10.0.0.0/16", "NAT subnet (network address/prefix)", kind=str),
            "gateway": Setting("10.0.0.1", "gateway inside the subnet", kind=str),
        },
        description="HNS NAT network",
    ))
