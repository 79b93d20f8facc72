"""Image tasks and the smoke test, with ctr against the containerd dockless set up."""
from __future__ import annotations

import shlex
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Context, Exit, task

from dockless import hookimpl
from dockless.namespace import session_for
from dockless.taskargs import plain_values

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session

NAMESPACE = "k8s.io"  # the CRI's namespace: images imported here are visible to crictl and pods


def ctr(session: Session, *args: str) -> str:
    lay = session.layout
    return shlex.join([str(session.local(lay.exe("ctr"))), "--address", lay.address, "--namespace", NAMESPACE, *args])


def require_ctr(session: Session) -> None:
    """ctr must be installed before any image task runs it (not bash's "No such file or directory")."""
    exe = session.layout.exe("ctr")
    if session.dry or not session.settings.native:
        return
    if not session.local(exe).is_file():
        raise Exit(f"ctr not found at {exe}: run `invoke setup` first", 1)


def _run(c: Context, line: str, what: str, hide: bool = True) -> Any:
    # shown: stdout only, live; stderr is kept for the one-line failure (else it is printed twice)
    result = c.run(line, hide=True if hide else "stderr", warn=True)
    if result is not None and not result.ok:
        err = (result.stderr or result.stdout or "").strip().splitlines()
        raise Exit(f"{what} failed: {err[-1] if err else 'exit ' + str(result.exited)}", 1)
    return result


def default_smoke_image(session: Session) -> tuple[str, list[str]]:
    if session.settings.target == "windows":
        from dockless.winimages import choose_image

        choice = choose_image(int(session.host("windows_build")), session.host("edition"))
        return choice.image, ["cmd", "/c", "echo", "hello"]
    return session.config("images")["smoke_image"], ["echo", "hello"]


@task(name="import", help={"path": "an OCI or docker image archive (tar)"})
def import_(c: Context, path: str) -> None:
    """Load an OCI/docker image archive into containerd (namespace k8s.io)."""
    plain_values("image.import", path=(path, "an image archive (a tar file)"))
    session = session_for(c)
    if not Path(path).is_file():
        raise Exit(f"image.import: {path}: no such file", 2)
    require_ctr(session)
    _run(c, ctr(session, "images", "import", str(Path(path).resolve())), f"importing {path}", hide=False)


@task(help={"ref": "image reference, e.g. mcr.microsoft.com/windows/nanoserver:ltsc2022"})
def pull(c: Context, ref: str) -> None:
    """Pull an image with ctr (on Windows: checked against the host build first)."""
    plain_values("image.pull", ref=(ref, "an image reference"))
    session = session_for(c)
    require_ctr(session)
    if session.settings.target == "windows":
        from dockless.winimages import ImageMismatch, choose_image

        try:
            choose_image(int(session.host("windows_build")), session.host("edition"), image=ref)
        except ImageMismatch as exc:
            raise Exit(str(exc), 2) from None
    _run(c, ctr(session, "images", "pull", ref), f"pulling {ref}", hide=False)


@task(name="list")
def list_(c: Context) -> None:
    """List the images containerd has (namespace k8s.io)."""
    session = session_for(c)
    require_ctr(session)
    print(_run(c, ctr(session, "images", "list", "--quiet"), "listing images").stdout, end="")


@task(help={"image": "image to run (default: host-matching nanoserver on Windows, [images] smoke_image on Linux)"})
def smoke(c: Context, image: str | None = None) -> None:
    """Run a one-shot container that prints hello (ctr run --rm), as the seed article does."""
    plain_values("smoke", image=(image, "an image reference"))
    session = session_for(c)
    require_ctr(session)
    default, cmd = default_smoke_image(session)
    image = image or default
    if session.settings.target == "windows":
        _run(c, ctr(session, "images", "pull", image), f"pulling {image}")
    name = f"dockless-smoke-{uuid.uuid4().hex[:8]}"
    result = _run(c, ctr(session, "run", "--rm", image, name, *cmd), "the smoke container")
    out = (result.stdout if result is not None else "").strip()
    if result is not None and out != "hello":
        raise Exit(f"smoke: expected 'hello' from {image}, got {out!r}", 1)
    print(out)


@hookimpl
def dockless_register_components(registry: Any) -> None:
    from dockless.model import Component, Setting, image_reference

    registry.add(Component(
        name="images", steps=(),
        settings={"smoke_image": Setting("docker.io/library/busybox:latest", "image `smoke` runs on Linux", kind=str,
                                         check=image_reference)},
        description="image tasks (no install steps)",
    ))
    registry.add_tasks("image", import_, pull, list_)
    registry.add_tasks("", smoke)
