"""What dockless installed on this host, as ``status``, ``doctor`` and ``teardown`` read it: the
manifest's paths in the target's flavour, the batched probe, the CNI confs, the state of each
recorded file. Also the two guards those commands share (:func:`read_only`, :func:`require_host`).
"""
from __future__ import annotations

from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from invoke import Exit

from dockless.session import Session

CNI_SUFFIXES = (".conf", ".conflist", ".json")  # what libcni loads from a conf dir, sorted by name


def target_path(session: Session, text: str) -> PurePath:
    """A path string from the manifest as a path of the target's flavour."""
    return PureWindowsPath(text) if session.settings.target == "windows" else PurePosixPath(text)


def read_only(session: Session) -> Session:
    """A fresh dry session on the same host and settings (checks plan steps; planning marks steps
    changed, which must not leak into a session that then runs steps)."""
    return Session(session.c, session.settings, session.registry, dry=True, console=session.console)


def require_host(session: Session, what: str) -> None:
    s = session.settings
    if s.target != s.host and s.fs_root is None:
        raise Exit(f"{what} looks at a {s.target} host; run it there (this is a {s.host} machine)", 2)


def probed(session: Session, key: str) -> Any:
    """The probe result for ``key`` (a step id or ``"host"``) if it is a dict; None when the step
    is not in this graph or nothing was probed."""
    value = session.probe(key) if key in session.steps or key == "host" else None
    return value if isinstance(value, dict) else None


def component_steps(session: Session, comp_name: str) -> list[str]:
    return [sid for sid, (comp, _step) in session.steps.items() if comp.name == comp_name]


def cni_component(session: Session) -> Any:
    return next((c for c in session.components if c.role == "cni"), None)


def cni_confs(session: Session) -> list[str]:
    """Conf file names in the CNI conf dir, in the order libcni loads them (first one counts)."""
    folder = session.local(session.layout.cni_conf_dir)
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in CNI_SUFFIXES)
    except OSError:
        return []


def dockless_conf(session: Session) -> str | None:
    """The name of the conf dockless wrote for the active CNI provider, if it is recorded."""
    comp = cni_component(session)
    conf_dir = session.layout.cni_conf_dir
    for path, entry in sorted(session.manifest.files.items()):
        target = target_path(session, path)
        if comp is not None and entry["component"] == comp.name and entry["kind"] == "rendered" and target.parent == conf_dir:
            return target.name
    return None


def file_states(session: Session, component: str | None = None) -> dict[str, str]:
    return {path: session.manifest.file_state(path, session.local(target_path(session, path)))
            for path, entry in sorted(session.manifest.files.items())
            if component is None or entry["component"] == component}
