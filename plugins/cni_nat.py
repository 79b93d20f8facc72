"""cni-nat (Windows): provider of the ``cni`` role with windows-container-networking's ``nat``."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, Install, StepFailed
from dockless.cni import conf_actions
from dockless.model import Component, Setting, Step, cidr_list
from dockless.namespace import run_step
from plugins._paths import release_url
from plugins.hns import effective_network

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session

REPO = "microsoft/windows-container-networking"
PLUGINS = ("nat.exe", "sdnbridge.exe", "sdnoverlay.exe")
CONF = "0-containerd-nat.conf"


def asset_urls(version: str) -> list[str]:
    """Both names the release asset has had (v0.3.1 was renamed upstream in 2025)."""
    tag = f"v{version}"
    return [release_url(REPO, tag, f"windows-container-networking-cni-amd64-{tag}.zip"),
            release_url(REPO, tag, f"windows-container-networking-cni-amd64-{version}.zip")]


def plan_install(session: Session) -> list[Action]:
    v = str(session.settings.pins.version("windows-cni"))
    files = [session.layout.cni_bin_dir / p for p in PLUGINS]
    if session.installed("cni-nat", v, files):
        return []
    urls = asset_urls(v)
    art = session.artifact("windows-cni", v, urls, [u + ".sha256" for u in urls])
    return [Install(art, session.layout.cni_bin_dir, PLUGINS, flatten=True)]


def render_conf(session: Session) -> bytes:
    from dockless.cninat import CniConfError, nat_conf

    cfg = session.config("cni_nat")
    net = effective_network(session)
    try:
        conf = nat_conf(
            name=net.name, subnet=net.subnet, gateway=net.gateway,
            plugin_version=str(session.settings.pins.version("windows-cni")),
            cni_version=cfg["cni_version"] or None,
            outbound_nat_exceptions=tuple(cfg["outbound_nat_exceptions"]),
        )
    except CniConfError as exc:
        raise StepFailed(str(exc)) from None
    return (json.dumps(conf, indent=2) + "\n").encode("utf-8")


def plan_config(session: Session) -> list[Action]:
    return conf_actions(session, "cni-nat", CONF, render_conf(session))


def install(c: Context) -> None:
    """Download the Windows CNI plugins (nat.exe …, sha256-verified) into the CNI bin dir."""
    run_step(c, "cni.install")


def config(c: Context) -> None:
    """Write 0-containerd-nat.conf matching the HNS network (name, subnet, gateway)."""
    run_step(c, "cni.config")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name="cni-nat", role="cni", platforms=("windows",), requires=("containerd", "hns"),
        steps=(Step("install", plan_install, install, platforms=("windows",)),
               Step("config", plan_config, config, platforms=("windows",))),
        settings={
            "cni_version": Setting("", "cniVersion to write (empty: the newest the plugin version accepts)", kind=str),
            "outbound_nat_exceptions": Setting([], "destinations (IPv4 CIDR, e.g. [\"10.0.0.0/8\"]) that bypass OutBoundNAT",
                                               kind=list, check=cidr_list),
        },
        description="Windows CNI nat plugin and conf",
    ))
