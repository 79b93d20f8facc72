"""Shared fixtures: the Linux release mirror built from Debian's binaries, once per session,
served over HTTP on 127.0.0.1 (used by the Linux-lane tests)."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockless.testing.httpserver import LocalHTTPServer
from dockless.testing.mirror import linux_mirror, serve

REPO = Path(__file__).resolve().parent.parent
# Debian bookworm's versions; the installed packages' own versions win when dpkg knows them
DEBIAN_VERSIONS = {"containerd": "1.6.20", "runc": "1.1.5", "cni-plugins": "1.1.1", "crictl": "1.36.0"}
DEBIAN_PACKAGES = {"containerd": "containerd", "runc": "runc", "cni-plugins": "containernetworking-plugins"}


def debian_version(package: str) -> str | None:
    """Upstream version of an installed Debian package (``1.6.20~ds1-1+deb12u3`` → ``1.6.20``)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except OSError:
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return out.stdout.split(":")[-1].split("~")[0].split("+")[0].split("-")[0]


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
    from dockless.testing.mirror import CNI_PLUGINS, DEBIAN_CNI, DEBIAN_CONTAINERD, DEBIAN_RUNC, LINUX_CONTAINERD

    needed = [DEBIAN_CONTAINERD / n for n in LINUX_CONTAINERD] + [DEBIAN_RUNC, DEBIAN_CNI / CNI_PLUGINS[0]]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        pytest.skip(f"needs Debian's containerd, runc and containernetworking-plugins ({absent[0]} is missing)")
    versions = dict(DEBIAN_VERSIONS)
    for key, package in DEBIAN_PACKAGES.items():
        versions[key] = debian_version(package) or versions[key]
    crictl = real_crictl()
    root = linux_mirror(tmp_path_factory.mktemp("mirror"), versions, crictl)
    with LocalHTTPServer() as server:
        yield Mirror(root, serve(server, root), server, versions, crictl)
