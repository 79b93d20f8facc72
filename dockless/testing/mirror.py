"""Release mirrors for tests: real archives in the real release layouts (DESIGN.md §3).

The Linux mirror packs the host's own binaries (Debian's containerd, runc, CNI plugins) as the
upstream release assets, with checksum files in each project's own format. The Windows mirror
packs stand-in ``.exe`` files in the Windows layouts (Windows binaries cannot run here). The
mirror folder uses github.com's paths, so it works as ``DOCKLESS_MIRROR`` directly (a path),
or served over HTTP with :func:`serve`.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

from dockless.testing.httpserver import LocalHTTPServer

DEBIAN_CONTAINERD = Path("/usr/bin")
DEBIAN_RUNC = Path("/usr/sbin/runc")
DEBIAN_CNI = Path("/usr/lib/cni")
LINUX_CONTAINERD = ("containerd", "ctr", "containerd-shim-runc-v2")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap", "ptp", "firewall")


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


def debian_versions() -> dict[str, str]:
    """The pins a mirror of this machine's Debian binaries needs (:data:`DEBIAN_VERSIONS`,
    with the installed packages' versions where dpkg knows them)."""
    versions = dict(DEBIAN_VERSIONS)
    for key, package in DEBIAN_PACKAGES.items():
        versions[key] = debian_version(package) or versions[key]
    return versions


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar_gz(members: dict[str, bytes], mode: int = 0o755) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _put(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def release_path(repo: str, tag: str, asset: str) -> str:
    return f"{repo}/releases/download/{tag}/{asset}"


def add_containerd(root: Path, version: str, os_name: str, binaries: dict[str, bytes]) -> str:
    asset = f"containerd-{version}-{os_name}-amd64.tar.gz"
    data = _tar_gz({f"bin/{name}": body for name, body in binaries.items()})
    rel = release_path("containerd/containerd", f"v{version}", asset)
    _put(root, rel, data)
    _put(root, rel + ".sha256sum", f"{_sha(data)}  {asset}\n".encode())
    return rel


def add_runc(root: Path, version: str, binary: bytes) -> str:
    rel = release_path("opencontainers/runc", f"v{version}", "runc.amd64")
    _put(root, rel, binary)
    other = _sha(b"arm64 stand-in")
    listing = f"{other}  runc.arm64\n{_sha(binary)}  runc.amd64\n"
    _put(root, release_path("opencontainers/runc", f"v{version}", "runc.sha256sum"), listing.encode())
    return rel


def add_cni_plugins(root: Path, version: str, plugins: dict[str, bytes]) -> str:
    asset = f"cni-plugins-linux-amd64-v{version}.tgz"
    data = _tar_gz({f"./{name}": body for name, body in plugins.items()})
    rel = release_path("containernetworking/plugins", f"v{version}", asset)
    _put(root, rel, data)
    _put(root, rel + ".sha256", f"{_sha(data)}  {asset}\n".encode())
    return rel


def add_crictl(root: Path, version: str, os_name: str, binary: bytes) -> str:
    asset = f"crictl-v{version}-{os_name}-amd64.tar.gz"
    data = _tar_gz({"crictl.exe" if os_name == "windows" else "crictl": binary})
    rel = release_path("kubernetes-sigs/cri-tools", f"v{version}", asset)
    _put(root, rel, data)
    _put(root, rel + ".sha256", _sha(data).encode())  # cri-tools publishes the bare digest
    return rel


def add_windows_cni(root: Path, version: str, old_name: bool = False) -> str:
    asset = f"windows-container-networking-cni-amd64-{'' if old_name else 'v'}{version}.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for exe in ("nat.exe", "sdnbridge.exe", "sdnoverlay.exe"):
            zf.writestr(exe, b"MZ stand-in for " + exe.encode())
    data = buf.getvalue()
    rel = release_path("microsoft/windows-container-networking", f"v{version}", asset)
    _put(root, rel, data)
    _put(root, rel + ".sha256", f"{_sha(data)}  ./release/{asset}\n".encode())
    return rel


def add_hns_module(root: Path, commit: str) -> tuple[str, str]:
    """A stand-in hns.psm1 at microsoft/SDN's path; returns (relative path, sha256) to pin."""
    body = b"function New-HnsNetwork { param($Type, $Name, $AddressPrefix, $Gateway) }\r\n"
    rel = f"microsoft/SDN/raw/{commit}/Kubernetes/windows/hns.psm1"
    _put(root, rel, body)
    return rel, _sha(body)


def linux_mirror(root: Path, versions: dict[str, str], crictl: Path | None = None) -> Path:
    """Release assets built from Debian's binaries on this machine (and a real crictl if given)."""
    add_containerd(root, versions["containerd"], "linux",
                   {n: (DEBIAN_CONTAINERD / n).read_bytes() for n in LINUX_CONTAINERD})
    add_runc(root, versions["runc"], DEBIAN_RUNC.read_bytes())
    add_cni_plugins(root, versions["cni-plugins"], {n: (DEBIAN_CNI / n).read_bytes() for n in CNI_PLUGINS if (DEBIAN_CNI / n).exists()})
    if crictl is not None:
        add_crictl(root, versions["crictl"], "linux", crictl.read_bytes())
    return root


def windows_mirror(root: Path, versions: dict[str, str]) -> dict[str, str]:
    """Windows release layouts with stand-in binaries; returns sha256 pins the mirror needs."""
    add_containerd(root, versions["containerd"], "windows",
                   {n: b"MZ stand-in " + n.encode() for n in ("containerd.exe", "ctr.exe", "containerd-shim-runhcs-v1.exe", "containerd-stress.exe")})
    add_windows_cni(root, versions["windows-cni"])
    add_crictl(root, versions["crictl"], "windows", b"MZ stand-in crictl.exe")
    _rel, sha = add_hns_module(root, versions["hns-module-commit"])
    return {f"hns.psm1@{versions['hns-module-commit']}": sha}


def serve(server: LocalHTTPServer, root: Path) -> str:
    """Serve every file under ``root`` at its relative path; returns the mirror base URL."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        server.add("/" + path.relative_to(root).as_posix(), path)
    return f"http://127.0.0.1:{server.port}"


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
