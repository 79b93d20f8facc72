"""nerdctl: a new component (no role) that ``requires`` containerd, with steps and a task of its own.

Opt-in: installing the package adds the component, but its steps do nothing until
``[nerdctl] enabled = true`` in dockless.toml (installing a package never changes what
``setup`` does by itself). Then ``setup`` runs, after containerd:

* ``nerdctl.install``: ``nerdctl-{V}-linux-amd64.tar.gz`` from containerd/nerdctl's releases
  (verified against the release's ``SHA256SUMS``), ``nerdctl`` into dockless's bin dir;
* ``nerdctl.config``: ``nerdctl.toml`` (``/etc/nerdctl/nerdctl.toml``, under ``DOCKLESS_ROOT`` when
  set) pointing at dockless's containerd socket, namespace and CNI dirs.

``invoke nerdctl.ps`` lists the containers through it.
"""
from __future__ import annotations

import shlex
from importlib.resources import files
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any

from invoke import Context, Exit, task

from dockless import hookimpl
from dockless.actions import Action, Install
from dockless.model import Component, Setting, Step
from dockless.namespace import run_step, session_for
from dockless.render import render
from dockless.versions import Version, VersionError

if TYPE_CHECKING:  # annotations only: plugins load at every `invoke --list`
    from dockless.session import Session

NAME = "nerdctl"
REPO = "containerd/nerdctl"
DEFAULT_VERSION = "2.1.6"
TEMPLATES = Path(str(files("dockless_nerdctl") / "templates" / "nerdctl"))

SETTINGS = {
    "enabled": Setting(False, "install and configure nerdctl in `setup` (installing the package alone changes nothing)", (True, False)),
    "version": Setting(DEFAULT_VERSION, "nerdctl release (MAJOR.MINOR.PATCH)"),
    "namespace": Setting("k8s.io", "containerd namespace nerdctl uses (k8s.io: the images crictl and pods see)"),
}


def enabled(session: Session) -> bool:
    return bool(session.config(NAME)["enabled"])


def version(session: Session) -> Version:
    return Version.parse(str(session.config(NAME)["version"]), "[nerdctl] version")


def config_path(session: Session) -> PurePath:
    return PurePosixPath(session.settings.root or "/") / "etc" / "nerdctl" / "nerdctl.toml"


def plan_install(session: Session) -> list[Action]:
    if not enabled(session):
        return []
    v = version(session)
    exe = session.layout.exe(NAME)
    if session.installed(NAME, str(v), [exe]):
        return []
    base = f"https://github.com/{REPO}/releases/download/{v.tag}"
    art = session.artifact(NAME, str(v), [f"{base}/nerdctl-{v}-linux-amd64.tar.gz"], [f"{base}/SHA256SUMS"])
    return [Install(art, session.layout.bin_dir, (NAME,), flatten=True)]


def render_config(session: Session) -> bytes:
    lay = session.layout
    return render(TEMPLATES, "nerdctl.toml.j2", address=f"unix://{lay.address}",
                  namespace=session.config(NAME)["namespace"], cni_path=lay.cni_bin_dir,
                  cni_netconfpath=lay.cni_conf_dir)


def plan_config(session: Session) -> list[Action]:
    if not enabled(session):
        return []
    return session.desired_file(config_path(session), render_config(session))


def install(c: Context) -> None:
    """Download nerdctl (sha256-verified) into the bin dir ([nerdctl] enabled = true)."""
    run_step(c, "nerdctl.install")


def config(c: Context) -> None:
    """Write nerdctl.toml pointing at dockless's containerd ([nerdctl] enabled = true)."""
    run_step(c, "nerdctl.config")


@task(help={"all": "also stopped containers"})
def ps(c: Context, all: bool = False) -> None:  # noqa: A002 - the flag is nerdctl's own name
    """List containers with nerdctl (through the nerdctl.toml dockless wrote)."""
    session = session_for(c)
    exe = session.local(session.layout.exe(NAME))
    if not exe.is_file():
        raise Exit(f"nerdctl.ps: {exe} is missing: set [nerdctl] enabled = true and run `invoke setup`", 2)
    line = shlex.join([str(exe), "ps"] + (["--all"] if all else []))
    c.run(line, env={"NERDCTL_TOML": str(session.local(config_path(session)))})


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name=NAME, platforms=("linux",), requires=("containerd",),
        steps=(Step("install", plan_install, install, platforms=("linux",)),
               Step("config", plan_config, config, platforms=("linux",))),
        settings=SETTINGS,
        templates=TEMPLATES,
        tasks=(ps,),
        description="nerdctl, the Docker-compatible CLI for containerd (opt-in)",
    ))


@hookimpl
def dockless_check_settings(settings: dict[str, dict[str, Any]], target: str) -> list[str]:
    cfg = settings.get(NAME)
    if not cfg or not cfg["enabled"]:
        return []
    try:
        Version.parse(str(cfg["version"]), "[nerdctl] version")
    except VersionError as exc:
        return [str(exc)]
    return []
