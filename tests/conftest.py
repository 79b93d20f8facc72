"""Shared fixtures: the Linux release mirror built from Debian's binaries, once per session,
served over HTTP on 127.0.0.1 (used by the Linux-lane tests)."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockless.testing.httpserver import LocalHTTPServer
from dockless.testing.mirror import debian_versions, linux_mirror, serve

REPO = Path(__file__).resolve().parent.parent
def real_crictl() -> Path | None:
    found = os.environ.get("DOCKLESS_CRICTL") or shutil.which("crictl")
    return Path(found) if found and Path(found).is_file() else None


@dataclass
class Mirror:
    root: Path  # github.com-shaped release tree
    url: str  # http://127.0.0.1:PORT
    server: LocalHTTPServer
    versions: dict[str, str]
    crictl: Path | None


@pytest.fixture(scope="session")
def linux_mirror_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """Release-shaped archives (+ checksum files) of Debian's containerd/runc/CNI plugins,
    built once and served on 127.0.0.1. Skips (saying which packages) where they are missing."""
    from dockless.testing.mirror import (
        CNI_PLUGINS,
        DEBIAN_CNI,
        DEBIAN_CONTAINERD,
        DEBIAN_RUNC,
        LINUX_CONTAINERD,
    )

    needed = [DEBIAN_CONTAINERD / n for n in LINUX_CONTAINERD] + [DEBIAN_RUNC, DEBIAN_CNI / CNI_PLUGINS[0]]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        pytest.skip(f"needs Debian's containerd, runc and containernetworking-plugins ({absent[0]} is missing)")
    versions = debian_versions()
    crictl = real_crictl()
    root = linux_mirror(tmp_path_factory.mktemp("mirror"), versions, crictl)
    with LocalHTTPServer() as server:
        yield Mirror(root, serve(server, root), server, versions, crictl)
