"""cni-bridge (Linux): provider of the ``cni`` role with the standard CNI bridge plugin."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, Install
from dockless.cni import conf_actions
from dockless.model import (
    Component,
    Setting,
    Step,
    interface_name,
    ipv4_network,
    non_empty,
)
from dockless.namespace import run_step
from dockless.render import render
from plugins._paths import TEMPLATES, release_url

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session

PLUGINS = ("bridge", "host-local", "loopback", "portmap")
CONF = "10-dockless-bridge.conflist"


def plan_install(session: Session) -> list[Action]:
    v = session.settings.pins.version("cni-plugins")
    files = [session.layout.cni_bin_dir / p for p in PLUGINS]
    if session.installed("cni-bridge", str(v), files):
        return []
    asset = f"cni-plugins-linux-amd64-{v.tag}.tgz"
    url = release_url("containernetworking/plugins", v.tag, asset)
    art = session.artifact("cni-plugins", str(v), [url], [url + ".sha256"])
    return [Install(art, session.layout.cni_bin_dir, PLUGINS, flatten=True)]


def render_conf(session: Session) -> bytes:
    cfg = session.config("cni_bridge")
    return render(TEMPLATES / "cni_bridge", f"{CONF}.j2", name=cfg["network"], bridge=cfg["bridge"], subnet=cfg["subnet"])


def plan_config(session: Session) -> list[Action]:
    return conf_actions(session, "cni-bridge", CONF, render_conf(session))


def install(c: Context) -> None:
    """Download the CNI plugins (sha256-verified) into the CNI bin dir."""
    run_step(c, "cni.install")


def config(c: Context) -> None:
    """Write the bridge conflist; it becomes the only conf dockless keeps in the conf dir."""
    run_step(c, "cni.config")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name="cni-bridge", role="cni", platforms=("linux",), requires=("containerd",),
        steps=(Step("install", plan_install, install, platforms=("linux",)),
               Step("config", plan_config, config, platforms=("linux",))),
        settings={
            "network": Setting("dockless", "CNI network name", kind=str, check=non_empty),
            "bridge": Setting("dockless0", "Linux bridge device (at most 15 of A-Z a-z 0-9 _ . -)", kind=str,
                              check=interface_name),
            "subnet": Setting("10.88.0.0/16", "pod subnet: an IPv4 network address/prefix", kind=str, check=ipv4_network),
        },
        templates=TEMPLATES / "cni_bridge",
        description="CNI bridge network (Linux)",
    ))
