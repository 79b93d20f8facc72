"""crictl: the CRI client, and a crictl.yaml where crictl really reads it."""
from __future__ import annotations

from pathlib import PurePath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, Install
from dockless.model import Component, Setting, Step, at_least
from dockless.namespace import run_step
from dockless.render import render
from plugins._paths import TEMPLATES, release_url

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session


def plan_install(session: Session) -> list[Action]:
    v = session.settings.pins.version("crictl")
    exe = session.layout.exe("crictl")
    if session.installed("crictl", str(v), [exe]):
        return []
    asset = f"crictl-{v.tag}-{session.settings.target}-amd64.tar.gz"
    url = release_url("kubernetes-sigs/cri-tools", v.tag, asset)
    art = session.artifact("crictl", str(v), [url], [url + ".sha256"])
    return [Install(art, session.layout.bin_dir, (exe.name,), flatten=True)]


def timeout(session: Session) -> int:
    value = session.config("crictl")["timeout"]
    return int(value) if value else (60 if session.settings.target == "windows" else 10)


def render_config(session: Session) -> bytes:
    return render(TEMPLATES / "crictl", "crictl.yaml.j2",
                  endpoint=session.layout.crictl_endpoint, timeout=timeout(session))


def config_path(session: Session) -> PurePath:
    """Where crictl reads its config: on Windows ``%USERPROFILE%\\.crictl\\crictl.yaml`` of the
    user running dockless (probed; the layout's default is only for plans made elsewhere)."""
    if session.settings.target == "windows" and not session.settings.root \
            and "user_profile" not in session.settings.assumed_host:
        host: Any = session.probe("host")
        profile = host.get("user_profile") if isinstance(host, dict) and "error" not in host else None
        if profile:
            return PureWindowsPath(str(profile)) / ".crictl" / "crictl.yaml"
    return session.layout.crictl_config


def plan_config(session: Session) -> list[Action]:
    return session.desired_file(config_path(session), render_config(session))


def install(c: Context) -> None:
    """Download crictl (sha256-verified) into the bin dir."""
    run_step(c, "crictl.install")


def config(c: Context) -> None:
    """Write crictl.yaml (Windows: %USERPROFILE%\\.crictl\\crictl.yaml) pointing at containerd."""
    run_step(c, "crictl.config")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name="crictl",
        requires=("containerd",),
        steps=(Step("install", plan_install, install), Step("config", plan_config, config)),
        settings={"timeout": Setting(0, "crictl timeout in seconds (0: 60 on Windows, 10 on Linux)", kind=int,
                                     check=at_least(0))},
        templates=TEMPLATES / "crictl",
        description="CRI client and its config",
    ))
