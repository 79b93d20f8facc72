"""runc (Linux): the OCI runtime containerd's runc shim starts."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, Install
from dockless.model import Component, Step
from dockless.namespace import run_step
from plugins._paths import release_url

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session


def plan_install(session: Session) -> list[Action]:
    v = session.settings.pins.version("runc")
    dest = session.layout.exe("runc")
    if session.installed("runc", str(v), [dest]):
        return []
    url = release_url("opencontainers/runc", v.tag, "runc.amd64")
    art = session.artifact("runc", str(v), [url], [release_url("opencontainers/runc", v.tag, "runc.sha256sum")])
    return [Install(art, session.layout.bin_dir, rename="runc")]


def install(c: Context) -> None:
    """Download runc (sha256-verified) into the bin dir."""
    run_step(c, "runc.install")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name="runc", platforms=("linux",),
        steps=(Step("install", plan_install, install, platforms=("linux",)),),
        description="OCI runtime",
    ))
