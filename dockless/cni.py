"""What every ``cni`` role provider shares: one active conf in the conf dir.

containerd loads only the alphabetically first conf (``max_conf_num = 1``), so a provider writes
its conf and removes the confs dockless wrote for any other provider (swap, and swap back).
"""
from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING

from dockless.actions import Action, RemoveFile

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session


def conf_actions(session: Session, component: str, filename: str, content: bytes) -> list[Action]:
    """Write ``filename`` into the CNI conf dir and drop stale confs of other providers."""
    conf_dir = session.layout.cni_conf_dir
    actions = session.desired_file(conf_dir / filename, content)
    for path, entry in sorted(session.manifest.files.items()):
        target = PurePath(path) if session.settings.target == "linux" else conf_dir.__class__(path)
        if entry["component"] != component and entry["kind"] == "rendered" and target.parent == conf_dir:
            actions.append(RemoveFile(target, f"conf of the inactive provider {entry['component']}"))
    return actions
