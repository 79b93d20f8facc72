"""Windows host build -> container image tag and isolation mode.

Windows containers share the host kernel in *process* isolation, so the image's
build must be compatible with the host's build; with *Hyper-V* isolation each
container gets its own kernel in a utility VM and the image build only has to be
no newer than the host.  containerd reports a mismatch late and obscurely ("no match
for platform in manifest", "The container operating system does not match the host
operating system"), so dockless checks the combination before anything is pulled.

Rules encoded here (sources: Microsoft "Windows container version compatibility"
and "Portability for containers" docs; containerd ``platforms`` Windows matcher):

* process isolation, host build < 20348: the image build must equal the host build;
* process isolation, host build >= 20348: the image build must lie between 20348
  (Windows Server 2022, the first stable-ABI LTSC) and the host build, so a
  Windows Server 2022/23H2/2025 or Windows 11 host runs ``ltsc2022`` images;
* Hyper-V isolation: the image build must be <= the host build;
* client editions (Windows 10/11): dockless uses Hyper-V isolation only.  Microsoft
  describes process-isolated ltsc2022 images on Windows 11 as a preview with known
  failures, and Windows 10 needs a matching (long out of support) semi-annual image,
  so the dependable choice on a client is ``runhcs-wcow-hypervisor``.

Only base-image tags that exist on MCR and are in support are *suggested*
(:data:`BASE_TAGS`); older tags are still *recognised* by :func:`image_build`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal

__all__ = [
    "BASE_TAGS",
    "DEFAULT_PAUSE_IMAGE",
    "HANDLER_HYPERV",
    "HANDLER_PROCESS",
    "KNOWN_BUILDS",
    "LTSC2022",
    "UNKNOWN_BUILD",
    "Edition",
    "ImageChoice",
    "ImageMismatch",
    "Isolation",
    "build_label",
    "check_sandbox_image",
    "choose_image",
    "hyperv_compatible",
    "image_build",
    "is_linux_image",
    "multiarch_builds",
    "multiarch_variant",
    "normalize_isolation",
    "process_compatible",
]

Edition = Literal["client", "server"]
Isolation = Literal["process", "hyperv"]

#: containerd runtime handler for process isolation (containerd's Windows default).
HANDLER_PROCESS = "runhcs-wcow-process"
#: containerd runtime handler for Hyper-V isolation (``crictl runp --runtime``).
HANDLER_HYPERV = "runhcs-wcow-hypervisor"

#: Windows Server 2022 build: the floor of the stable-ABI process-isolation range.
LTSC2022 = 20348

#: ``ImageChoice.image_build`` for an image whose build cannot be read from its
#: reference (a custom image); such a choice was not checked against the host.
UNKNOWN_BUILD = 0

#: Host builds dockless knows by name (for messages).
KNOWN_BUILDS: dict[int, str] = {
    14393: "Windows Server 2016 / Windows 10 1607, ltsc2016",
    17763: "Windows Server 2019 / Windows 10 1809, ltsc2019",
    19042: "Windows 10 20H2",
    19045: "Windows 10 22H2",
    20348: "Windows Server 2022, ltsc2022",
    22621: "Windows 11 22H2",
    25398: "Windows Server 23H2, annual channel",
    26100: "Windows Server 2025 / Windows 11 24H2, ltsc2025",
    26200: "Windows 11 25H2",
}

#: Supported base-image tags on MCR, per flavor: tag -> build.  These are the only
#: tags dockless suggests or picks by default.  Nano Server for Windows Server 2019
#: is published as ``1809``; Server Core has both ``ltsc2019`` and ``1809``.
#: Windows Server 23H2 has no images of its own (it runs ltsc2022 images), and
#: Nano Server for 2016 (``sac2016``) went out of support in 2018.
BASE_TAGS: dict[str, dict[str, int]] = {
    "nanoserver": {"1809": 17763, "ltsc2022": 20348, "ltsc2025": 26100},
    "servercore": {"ltsc2016": 14393, "ltsc2019": 17763, "ltsc2022": 20348, "ltsc2025": 26100},
}
_MCR_WINDOWS = "mcr.microsoft.com/windows/"

#: The sandbox (pause) image dockless configures by default.
DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"

# Tag words that name a Windows build.  ltsc*/sac* are unambiguous; the bare
# release ids (1809, 20H2 ...) only count next to a Windows marker or on MCR.
_LTSC_WORDS: dict[str, int] = {
    "ltsc2016": 14393,
    "sac2016": 14393,
    "ltsc2019": 17763,
    "ltsc2022": 20348,
    "ltsc2025": 26100,
}
_RELEASE_WORDS: dict[str, int] = {
    "1607": 14393,
    "1709": 16299,
    "1803": 17134,
    "1809": 17763,
    "1903": 18362,
    "1909": 18363,
    "2004": 19041,
    "20h2": 19042,
}
_WINDOWS_MARKERS = {"nanoserver", "servercore", "windowsservercore", "windows"}
_OS_VERSION = re.compile(r"^10\.0\.(\d{5})(?:\.\d+)?$")

# Images that only exist for Linux (Docker Official Images without Windows
# variants, and common distro bases).  Matched on the repository path.
_LINUX_REPOS = {
    "library/alpine", "library/busybox", "library/ubuntu", "library/debian",
    "library/centos", "library/fedora", "library/rockylinux", "library/almalinux",
    "library/archlinux", "library/amazonlinux", "library/oraclelinux",
    "library/nginx", "library/httpd", "library/redis", "library/postgres",
    "library/mysql", "library/mariadb", "library/memcached", "library/traefik",
}
# Tag words that mean a Linux variant (python:3.12-slim, golang:1.22-alpine ...).
_LINUX_TAG_WORDS = {
    "alpine", "slim", "bookworm", "bullseye", "buster", "trixie",
    "jammy", "noble", "focal", "bionic", "musl", "distroless",
}

# Multi-arch images whose Windows variants dockless knows: repository ->
# [(minimum tag version, variant builds)], newest rule first.
# registry.k8s.io/pause: 3.9 dropped 20H2 (ltsc2019 + ltsc2022 left); 3.10.2 is
# the first with Windows Server 2025 (ltsc2025).
_MULTIARCH: dict[str, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "registry.k8s.io/pause": [
        ((3, 10, 2), (17763, 20348, 26100)),
        ((3, 9), (17763, 20348)),
    ],
}


@dataclass(frozen=True)
class ImageChoice:
    """An image together with how it has to run on the host.

    ``image_build`` is the Windows build of the image (for a multi-arch image: of
    the variant containerd will pick), or :data:`UNKNOWN_BUILD` when the
    reference does not reveal it.  ``runtime_handler`` goes to
    ``crictl runp --runtime``.
    """

    image: str
    image_build: int
    isolation: Literal["process", "hyperv"]
    runtime_handler: str


class ImageMismatch(ValueError):
    """The image cannot run on the host as asked; the message is one line that
    names the host build and edition and what would match instead."""


# --------------------------------------------------------------------------
# compatibility rules
# --------------------------------------------------------------------------


def process_compatible(host_build: int, image_build: int) -> bool:
    """Whether an image of ``image_build`` can run process-isolated on a host of
    ``host_build`` (kernel-level rule, edition not considered).

    Hosts older than Windows Server 2022 need the exact build; newer hosts accept
    any image build from 20348 up to their own build (stable ABI).
    """
    if host_build < LTSC2022:
        return image_build == host_build
    return LTSC2022 <= image_build <= host_build


def hyperv_compatible(host_build: int, image_build: int) -> bool:
    """Whether an image of ``image_build`` can run Hyper-V isolated on ``host_build``
    (the utility VM runs the image's own kernel; it must not be newer than the host)."""
    return 0 < image_build <= host_build


def _process_allowed(host_build: int, edition: Edition, image_build: int) -> bool:
    # dockless policy: client editions use Hyper-V isolation only (module docstring).
    return edition == "server" and process_compatible(host_build, image_build)


def multiarch_variant(host_build: int, variant_builds: Iterable[int]) -> int | None:
    """The Windows variant of a multi-arch image (manifest list) that containerd
    selects on ``host_build``, or ``None`` when no variant matches.

    containerd's Windows platform matcher applies the process-isolation build rule
    to every pull, whatever isolation the container will use: a host older than
    20348 only takes a variant of its own build; a newer host takes the newest
    variant between 20348 and its build.
    """
    usable = [b for b in variant_builds if process_compatible(host_build, b)]
    return max(usable) if usable else None


def multiarch_builds(ref: str) -> tuple[int, ...] | None:
    """The Windows variant builds of a known multi-arch image (e.g.
    ``registry.k8s.io/pause:3.10.2`` -> ``(17763, 20348, 26100)``), else ``None``."""
    registry, repo, tag = _split_ref(ref)
    rules = _MULTIARCH.get(f"{registry}/{repo}")
    if not rules or tag is None:
        return None
    version = _version_tuple(tag)
    if version is None:
        return None
    for minimum, builds in rules:
        if version >= minimum:
            return builds
    return None


# --------------------------------------------------------------------------
# image references
# --------------------------------------------------------------------------


def _split_ref(ref: str) -> tuple[str, str, str | None]:
    """(registry, repository path, tag) with Docker Hub defaults applied; the
    digest, if any, is dropped."""
    name = ref.strip().split("@", 1)[0]
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, repo = parts[0].lower(), "/".join(parts[1:])
    else:
        registry, repo = "docker.io", name
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = "docker.io"
    if registry == "docker.io" and "/" not in repo:
        repo = f"library/{repo}"
    return registry, repo.lower(), tag


def _version_tuple(tag: str) -> tuple[int, ...] | None:
    m = re.match(r"^v?(\d+(?:\.\d+)*)", tag)
    if not m:
        return None
    return tuple(int(p) for p in m.group(1).split("."))


def image_build(ref: str) -> int | None:
    """The Windows build an image reference names in its tag, or ``None``.

    ``nanoserver:ltsc2022`` -> 20348, ``servercore:1809`` -> 17763,
    ``nanoserver:10.0.20348.2227`` -> 20348, ``python:3.12-windowsservercore-ltsc2025``
    -> 26100.  Linux images, multi-arch tags (``pause:3.10.2``) and custom tags give
    ``None``.
    """
    registry, repo, tag = _split_ref(ref)
    if not tag:
        return None
    words = [w.lower() for w in re.split(r"[-_]", tag) if w]
    on_mcr_windows = f"{registry}/{repo}/".startswith(_MCR_WINDOWS) or f"{registry}/{repo}" == "mcr.microsoft.com/windows"
    windowsish = on_mcr_windows or any(w in _WINDOWS_MARKERS for w in words)
    for word in words:
        if word in _LTSC_WORDS:
            return _LTSC_WORDS[word]
        m = _OS_VERSION.match(word)
        if m:
            return int(m.group(1))
        if windowsish and word in _RELEASE_WORDS:
            return _RELEASE_WORDS[word]
    return None


def is_linux_image(ref: str) -> bool:
    """Whether the reference is known to be a Linux-only image (``alpine``,
    ``docker.io/library/busybox``, ``python:3.12-slim`` ...)."""
    registry, repo, tag = _split_ref(ref)
    if image_build(ref) is not None or multiarch_builds(ref) is not None:
        return False
    if registry == "docker.io" and repo in _LINUX_REPOS:
        return True
    if registry == "gcr.io" and repo.startswith("distroless/"):
        return True
    words = {w.lower() for w in re.split(r"[-_.]", tag or "") if w}
    return bool(words & _LINUX_TAG_WORDS) and not (words & _WINDOWS_MARKERS)


def _flavor_of(ref: str) -> str | None:
    registry, repo, _ = _split_ref(ref)
    full = f"{registry}/{repo}"
    for flavor in BASE_TAGS:
        if full == _MCR_WINDOWS + flavor:
            return flavor
    return None


# --------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------


def build_label(build: int) -> str:
    """``"17763 (Windows Server 2019 / Windows 10 1809, ltsc2019)"`` or just the number."""
    name = KNOWN_BUILDS.get(build)
    return f"{build} ({name})" if name else str(build)


def _short(ref: str) -> str:
    """``mcr.microsoft.com/windows/nanoserver:ltsc2022`` -> ``nanoserver:ltsc2022``."""
    r = ref.strip()
    return r[len(_MCR_WINDOWS):] if r.startswith(_MCR_WINDOWS) else r


def _ltsc_alias(build: int) -> str:
    alias = next((w for w, b in _LTSC_WORDS.items() if b == build and w.startswith("ltsc")), None)
    return f", {alias}" if alias else ""


def _describe_choice(choice: ImageChoice) -> str:
    mode = "process isolation" if choice.isolation == "process" else (
        f"Hyper-V isolation, runtime handler {HANDLER_HYPERV}")
    return f"{choice.image} (build {choice.image_build}{_ltsc_alias(choice.image_build)}, {mode})"


# --------------------------------------------------------------------------
# choosing
# --------------------------------------------------------------------------


def normalize_isolation(isolation: str | None) -> Isolation | None:
    """Accept ``process``/``hyperv`` (also ``hyper-v``, ``default`` and the runtime
    handler names); raise ``ValueError`` for anything else."""
    if isolation is None:
        return None
    key = isolation.strip().lower()
    if key in ("", "default", "auto"):
        return None
    if key in ("process", HANDLER_PROCESS):
        return "process"
    if key in ("hyperv", "hyper-v", HANDLER_HYPERV):
        return "hyperv"
    raise ValueError(
        f"unknown isolation {isolation!r}: use 'process' ({HANDLER_PROCESS}) "
        f"or 'hyperv' ({HANDLER_HYPERV})")


def _make(image: str, build: int, isolation: Isolation) -> ImageChoice:
    handler = HANDLER_PROCESS if isolation == "process" else HANDLER_HYPERV
    return ImageChoice(image=image, image_build=build, isolation=isolation, runtime_handler=handler)


def _best_default(host_build: int, edition: Edition, flavor: str,
                  isolation: Isolation | None) -> ImageChoice | None:
    """Newest base image of ``flavor`` that runs on the host, preferring process
    isolation; ``None`` if nothing fits."""
    tags = sorted(BASE_TAGS[flavor].items(), key=lambda kv: kv[1], reverse=True)
    if isolation in (None, "process"):
        for tag, build in tags:
            if _process_allowed(host_build, edition, build):
                return _make(f"{_MCR_WINDOWS}{flavor}:{tag}", build, "process")
    if isolation in (None, "hyperv"):
        for tag, build in tags:
            if hyperv_compatible(host_build, build):
                return _make(f"{_MCR_WINDOWS}{flavor}:{tag}", build, "hyperv")
    return None


def _host(host_build: int, edition: Edition) -> str:
    return f"host build {host_build} ({edition})"


def _alternative(host_build: int, edition: Edition, flavor: str,
                 isolation: Isolation | None) -> str:
    """What would run instead, as a phrase for an error message."""
    want = _best_default(host_build, edition, flavor, isolation)
    if want is None and isolation is not None:
        want = _best_default(host_build, edition, flavor, None)
    if want is None:
        for other in BASE_TAGS:
            want = _best_default(host_build, edition, other, None)
            if want is not None:
                break
    if want is None:
        return ("no supported Windows base image runs on it; use Windows Server 2019 "
                "(17763) or newer, or Windows 11")
    return f"use {_describe_choice(want)}"


def choose_image(
    host_build: int,
    edition: Edition,
    *,
    image: str | None = None,
    isolation: str | None = None,
    flavor: str = "nanoserver",
) -> ImageChoice:
    """Pick, or validate, the image and isolation for a Windows host.

    Without ``image`` the newest supported ``flavor`` tag that runs on the host is
    chosen, process isolation preferred where dockless allows it (servers);
    ``isolation`` then only restricts the mode.  When ``flavor`` has no image for
    the host (Nano Server on 14393) Server Core is used instead.

    With ``image`` the combination is checked: a Linux image, an image newer than
    the host, process isolation on a client or on a non-matching build raise
    :class:`ImageMismatch` naming what would match.  Known multi-arch images (the
    pause image) are resolved to the variant containerd would pull
    (:func:`multiarch_variant`).  An image whose build cannot be read from its
    reference is accepted unchecked with ``image_build == UNKNOWN_BUILD``
    (process isolation on servers, Hyper-V on clients unless ``isolation`` says
    otherwise).
    """
    if edition not in ("client", "server"):
        raise ValueError(f"edition must be 'client' or 'server', not {edition!r}")
    if flavor not in BASE_TAGS:
        raise ValueError(f"unknown flavor {flavor!r}: use one of {', '.join(BASE_TAGS)}")
    iso = normalize_isolation(isolation)
    host = _host(host_build, edition)

    if image is None:
        if edition == "client" and iso == "process":
            raise ImageMismatch(
                f"process isolation is not used on {host}: Windows 10/11 run Windows "
                f"Server images with Hyper-V isolation; {_alternative(host_build, edition, flavor, 'hyperv')}")
        for fl in (flavor, *[f for f in BASE_TAGS if f != flavor]):
            choice = _best_default(host_build, edition, fl, iso)
            if choice is not None:
                return choice
        raise ImageMismatch(
            f"no supported Windows base image runs on {host}: "
            f"{_alternative(host_build, edition, flavor, None)}")

    if is_linux_image(image):
        raise ImageMismatch(
            f"{_short(image)} is a Linux image and cannot run on {host}: Windows targets "
            f"need Windows images; {_alternative(host_build, edition, flavor, iso)}")

    variants = multiarch_builds(image)
    if variants is not None:
        return _choose_multiarch(host_build, edition, image, variants, iso)

    build = image_build(image)
    short = _short(image)
    alt_flavor = _flavor_of(image) or flavor
    if build is None:
        chosen: Isolation = iso or ("process" if edition == "server" else "hyperv")
        if edition == "client" and chosen == "process":
            raise ImageMismatch(
                f"process isolation is not used on {host}: Windows 10/11 run Windows "
                f"Server images with Hyper-V isolation (runtime handler {HANDLER_HYPERV})")
        return _make(image, UNKNOWN_BUILD, chosen)

    what = f"{short} (build {build})"
    if iso == "process":
        if edition == "client":
            raise ImageMismatch(
                f"{what} cannot run process-isolated on {host}: Windows 10/11 run Windows "
                f"Server images with Hyper-V isolation; "
                f"{_alternative(host_build, edition, alt_flavor, 'hyperv')}")
        if not process_compatible(host_build, build):
            raise ImageMismatch(
                f"{what} cannot run process-isolated on {host}: {_process_rule(host_build)}; "
                f"{_alternative(host_build, edition, alt_flavor, None)}")
        return _make(image, build, "process")
    if iso == "hyperv":
        if not hyperv_compatible(host_build, build):
            raise ImageMismatch(
                f"{what} cannot run on {host}, even with Hyper-V isolation (the image is "
                f"newer than the host); {_alternative(host_build, edition, alt_flavor, None)}")
        return _make(image, build, "hyperv")
    if _process_allowed(host_build, edition, build):
        return _make(image, build, "process")
    if hyperv_compatible(host_build, build):
        return _make(image, build, "hyperv")
    raise ImageMismatch(
        f"{what} cannot run on {host}: the image is newer than the host; "
        f"{_alternative(host_build, edition, alt_flavor, None)}")


def _process_rule(host_build: int) -> str:
    if host_build < LTSC2022:
        return f"hosts older than {LTSC2022} need an image of exactly build {host_build}"
    return f"this host takes images of build {LTSC2022} to {host_build}"


def _choose_multiarch(host_build: int, edition: Edition, image: str,
                      variants: tuple[int, ...], iso: Isolation | None) -> ImageChoice:
    host = _host(host_build, edition)
    short = _short(image)
    variant = multiarch_variant(host_build, variants)
    if variant is None:
        listed = ", ".join(f"{b} ({_ltsc_alias(b)[2:]})" if _ltsc_alias(b) else str(b)
                           for b in variants)
        raise ImageMismatch(
            f"{short} has Windows variants for builds {listed} and containerd on {host} "
            f"pulls none of them ({_process_rule(host_build)}, whatever the isolation): "
            f"run pods on a host of one of those builds or of build {LTSC2022} or newer "
            f"(Windows Server 2022+, Windows 11)")
    if edition == "client":
        if iso == "process":
            raise ImageMismatch(
                f"{short} cannot run process-isolated on {host}: Windows 10/11 run Windows "
                f"Server images with Hyper-V isolation (runtime handler {HANDLER_HYPERV})")
        return _make(image, variant, "hyperv")
    return _make(image, variant, iso or "process")


def check_sandbox_image(
    host_build: int,
    edition: Edition,
    *,
    image: str = DEFAULT_PAUSE_IMAGE,
    isolation: str | None = None,
) -> ImageChoice:
    """Validate the pod sandbox (pause) image for the host: the same checks as
    :func:`choose_image` with an explicit image; a multi-arch pause image is OK
    where containerd finds a matching variant."""
    return choose_image(host_build, edition, image=image, isolation=isolation)
