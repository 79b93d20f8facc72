"""containerd: the release binaries, config.toml for the pinned major, and the service (whose
management lives in :mod:`plugins.containerd_service`)."""
from __future__ import annotations

from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, Install, Refusal, WriteFile
from dockless.model import Component, Setting, Step, image_reference
from dockless.namespace import run_step
from dockless.render import render
from dockless.versions import Version
from plugins._paths import TEMPLATES, release_url
from plugins.containerd_service import (
    SERVICE_PROBE,
    plan_service,
    stop_for_upgrade,
    undo_service,
)

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session

REPO = "containerd/containerd"
BINARIES = {
    "windows": ("containerd.exe", "ctr.exe", "containerd-shim-runhcs-v1.exe"),
    "linux": ("containerd", "ctr", "containerd-shim-runc-v2"),
}


def schema_for(version: Version) -> int:
    """Config schema by release: 1.x → 2, 2.0–2.2 → 3, 2.3+ → 4 (field case C03)."""
    if version.major < 2:
        return 2
    return 3 if version.minor < 3 else 4


def version(session: Session) -> Version:
    return session.settings.pins.version("containerd")


def artifact(session: Session) -> Any:
    v = version(session)
    asset = f"containerd-{v}-{session.settings.target}-amd64.tar.gz"
    url = release_url(REPO, v.tag, asset)
    return session.artifact("containerd", str(v), [url], [url + ".sha256sum"])


def installed_files(session: Session) -> list[PurePath]:
    return [session.layout.bin_dir / name for name in BINARIES[session.settings.target]]


def plan_install(session: Session) -> list[Action]:
    if session.installed("containerd", str(version(session)), installed_files(session)):
        return []
    members = tuple(f"bin/{name}" for name in BINARIES[session.settings.target])
    return stop_for_upgrade(session) + [Install(artifact(session), session.layout.install_dir, members)]


# -- config ------------------------------------------------------------------------------------
def restrict_oom(session: Session) -> bool:
    """containerd must be told not to lower ``oom_score_adj`` where it cannot (nested or
    restricted hosts; runc then fails pod sandboxes with "can't get final child's PID")."""
    wanted = session.config("containerd")["restrict_oom_score_adj"]
    if wanted != "auto":
        return bool(wanted)
    if session.settings.target != "linux" or not session.settings.native:
        return False
    return not can_lower_oom_score_adj()


def can_lower_oom_score_adj() -> bool:
    path = Path("/proc/self/oom_score_adj")
    try:
        current = int(path.read_text())
        if current <= -1000:
            return False
        path.write_text(str(current - 1))
        path.write_text(str(current))
        return True
    except (OSError, ValueError):
        return False


def runtimes(session: Session) -> list[dict[str, Any]]:
    if session.settings.target == "windows":
        return [
            {"name": "runhcs-wcow-process", "type": "io.containerd.runhcs.v1", "options": {}},
            {"name": "runhcs-wcow-hypervisor", "type": "io.containerd.runhcs.v1",
             "options": {"SandboxIsolation": "1", "ScaleCpuLimitsToSandbox": "true"}},
        ]
    from dockless.render import toml_string

    runc = session.layout.exe("runc")
    return [{"name": "runc", "type": "io.containerd.runc.v2", "options": {"BinaryName": toml_string(runc)}}]


def render_config(session: Session) -> bytes:
    v = version(session)
    schema = schema_for(v)
    lay = session.layout
    cfg = session.config("containerd")
    linux = session.settings.target == "linux"
    return render(
        TEMPLATES / "containerd",
        "config-v2.toml.j2" if schema == 2 else "config-v3.toml.j2",
        version=str(v),
        schema=schema,
        root=lay.containerd_root,
        state=lay.containerd_state,
        address=lay.address,
        opt_dir=(lay.containerd_root / "opt") if linux else "",
        sandbox_image=cfg["sandbox_image"],
        restrict_oom_score_adj=restrict_oom(session),
        snapshotter="overlayfs" if linux else "windows",
        runtimes=runtimes(session),
        cni_bin_dir=lay.cni_bin_dir,
        cni_conf_dir=lay.cni_conf_dir,
        cni_bin_dirs=(v.major, v.minor) >= (2, 1),
    )


def declared_schema(content: bytes) -> int | None:
    """The ``version =`` a config.toml declares (containerd reads a missing one as 1); None
    when the file is not TOML."""
    import tomllib

    try:
        declared = tomllib.loads(content.decode("utf-8")).get("version", 1)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return declared if isinstance(declared, int) else None


def check_kept_config(session: Session, path: PurePath) -> None:
    """A config.toml dockless keeps (the user's, drift without --force) must still declare the
    schema of the pinned containerd (field case C03): refuse it here (``setup``: before it changes
    anything), before the service starts,
    not with containerd's own error (or a silent migration that drops keys) afterwards."""
    from dockless.files import read_bytes

    current = read_bytes(session.local(path))
    if current is None:
        return
    v = version(session)
    wanted = schema_for(v)
    declared = declared_schema(current)
    if declared is None:
        raise Refusal(f"{path} is not valid TOML and containerd {v} cannot load it; fix it, "
                         f"or re-run with --force to replace it (a backup is kept)")
    if declared != wanted:
        raise Refusal(f"{path} declares version = {declared} but containerd {v} needs config schema {wanted} "
                         f"(1.x: 2, 2.0-2.2: 3, 2.3+: 4); update the file, or re-run with --force to replace it "
                         f"(a backup is kept)")


def plan_config(session: Session) -> list[Action]:
    path = session.layout.containerd_config
    actions = session.desired_file(path, render_config(session))
    if session.settings.native and not any(isinstance(a, WriteFile) for a in actions):
        check_kept_config(session, path)
    return actions


def install(c: Context) -> None:
    """Download containerd (sha256-verified) and install its binaries."""
    run_step(c, "containerd.install")


def config(c: Context) -> None:
    """Render config.toml for the pinned containerd major (schema 2, 3 or 4)."""
    run_step(c, "containerd.config")


def service(c: Context) -> None:
    """Register/start containerd (Windows service, systemd unit or background process) and wait until it answers."""
    run_step(c, "containerd.service")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name="containerd",
        requires=("preflight", "runc"),
        steps=(
            Step("install", plan_install, install),
            Step("config", plan_config, config),
            Step("service", plan_service, service, probe=SERVICE_PROBE, undo=undo_service),
        ),
        settings={
            "log_level": Setting("info", "containerd --log-level", ("trace", "debug", "info", "warn", "error")),
            "sandbox_image": Setting("registry.k8s.io/pause:3.10.2", "pause image for pod sandboxes",
                                     kind=str, check=image_reference),
            "restrict_oom_score_adj": Setting("auto", "true/false, or auto: detect hosts where containerd cannot lower oom_score_adj", ("auto", True, False)),
        },
        templates=TEMPLATES / "containerd",
        description="containerd binaries, config.toml, service",
    ))
