"""`invoke demo`: the whole Linux lane for real on a machine without GitHub access.

Packs this machine's Debian containerd/runc/CNI binaries as the upstream release assets, serves
them on 127.0.0.1, and runs `setup`, `image.import`, `smoke` and a second (no-op) `setup` under
a private root, exactly as a user would with `DOCKLESS_MIRROR`. containerd is left running
(the printed `invoke teardown --purge --yes` removes it) unless ``--stop``, which tears down with
--purge and removes the demo's work folder and root.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from invoke import Context, Exit, task

from dockless.taskargs import plain_values

REPO = Path(__file__).resolve().parent.parent
NEEDS = {"/usr/bin/containerd": "containerd", "/usr/sbin/runc": "runc",
         "/usr/lib/cni/bridge": "containernetworking-plugins", "/bin/busybox": "busybox-static"}


@task(help={"root": "where to install (default: a new folder under /tmp)", "stop": "at the end: stop containerd, remove everything the demo made (teardown --purge, its folders)"})
def demo(c: Context, root: str | None = None, stop: bool = False) -> None:
    """Offline, for real: Linux-lane setup from a local mirror of Debian's binaries, then smoke."""
    plain_values("demo", root=(root, "a directory"))
    from dockless.testing.httpserver import LocalHTTPServer
    from dockless.testing.images import busybox_oci
    from dockless.testing.mirror import debian_versions, linux_mirror, serve

    if os.geteuid() != 0:
        raise Exit("demo starts containerd: run it as root", 2)
    missing = sorted({pkg for path, pkg in NEEDS.items() if not Path(path).exists()})
    if missing:  # the demo's inputs are Debian's binaries: fetch them the way .ci/run does
        if not shutil.which("apt-get"):
            raise Exit(f"demo needs these Debian packages: {' '.join(missing)}", 2)
        print(f"# installing Debian packages the demo packs as release assets: {' '.join(missing)}", flush=True)
        c.run("apt-get update -qq", env={"DEBIAN_FRONTEND": "noninteractive"})
        c.run(f"apt-get install -y -qq {' '.join(missing)}", env={"DEBIAN_FRONTEND": "noninteractive"})
    versions = debian_versions()
    work = Path(tempfile.mkdtemp(prefix="dockless-demo-"))
    own_root = root is None
    root = root or tempfile.mkdtemp(dir="/tmp", prefix="dl")
    (work / "dockless.toml").write_text("[versions]\n" + "".join(f'{k} = "{v}"\n' for k, v in versions.items()))
    crictl = shutil.which("crictl") or os.environ.get("DOCKLESS_CRICTL")
    env = {
        "DOCKLESS_TARGET": "linux", "DOCKLESS_ROOT": root, "DOCKLESS_SERVICE": "process",
        "DOCKLESS_CONFIG": str(work / "dockless.toml"), "DOCKLESS_CACHE": str(work / "cache"),
    }
    if not crictl:
        env["DOCKLESS_DISABLE_PLUGINS"] = "crictl"
        print("# skipping crictl: no crictl binary on PATH or in DOCKLESS_CRICTL (Debian packages no cri-tools), "
              "so the demo runs with DOCKLESS_DISABLE_PLUGINS=crictl")
    inv = f"{sys.executable} -m invoke --search-root {REPO}"
    try:
        linux_mirror(work / "mirror", versions, Path(crictl) if crictl else None)
        image = busybox_oci(work / "busybox.tar")
        with LocalHTTPServer() as server:
            env["DOCKLESS_MIRROR"] = serve(server, work / "mirror")
            print(f"# mirror {env['DOCKLESS_MIRROR']} (Debian binaries as release assets), root {root}")
            for step in ("setup --timings", f"image.import {image}", "smoke --image docker.io/library/busybox:dockless",
                         "setup"):
                print(f"$ invoke {step}", flush=True)
                c.run(f"{inv} {step}", env=env, pty=False)
    finally:
        if stop:
            _stop(c, inv, env, Path(root), own_root, work)
    if stop:
        return
    shown = " ".join(f"{k}={env[k]}" for k in ("DOCKLESS_TARGET", "DOCKLESS_ROOT", "DOCKLESS_SERVICE", "DOCKLESS_CONFIG",
                                               "DOCKLESS_DISABLE_PLUGINS") if k in env)
    print(f"done. containerd for this demo: {shown} invoke status")
    print(f"remove it all: {shown} invoke teardown --purge --yes && rm -rf {work}"
          + (f" {root}" if own_root else ""))


def _stop(c: Context, inv: str, env: dict[str, str], root: Path, own_root: bool, work: Path) -> None:
    """``demo --stop``: tear down with --purge (containerd's data too), then remove the demo's
    work folder (mirror, cache, config) and the root it made; nothing stays behind."""
    print("$ invoke teardown --purge --yes", flush=True)
    result = c.run(f"{inv} teardown --purge --yes", env=env, warn=True, pty=False)
    if result is not None and not result.ok:
        shown = " ".join(f"{k}={v}" for k, v in env.items() if k != "DOCKLESS_MIRROR")
        print(f"teardown failed: {root} and {work} are kept; fix the above and run `{shown} invoke teardown --purge --yes`")
        return
    shutil.rmtree(work, ignore_errors=True)
    if own_root:
        shutil.rmtree(root, ignore_errors=True)
    print(f"done. containerd stopped; removed {work}" + (f" and {root}" if own_root else ""))
