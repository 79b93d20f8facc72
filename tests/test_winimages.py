"""Host build x image build x edition -> (tag, runtime handler) or a refusal."""
from __future__ import annotations

import pytest

from dockless.winimages import (
    DEFAULT_PAUSE_IMAGE,
    HANDLER_HYPERV,
    HANDLER_PROCESS,
    UNKNOWN_BUILD,
    ImageChoice,
    ImageMismatch,
    check_sandbox_image,
    choose_image,
    image_build,
    is_linux_image,
    multiarch_builds,
    multiarch_variant,
    normalize_isolation,
    process_compatible,
)

MCR = "mcr.microsoft.com/windows/"
NANO = {t: f"{MCR}nanoserver:{t}" for t in ("1809", "ltsc2022", "ltsc2025")}
CORE = {t: f"{MCR}servercore:{t}" for t in ("ltsc2016", "ltsc2019", "ltsc2022", "ltsc2025")}
P, H = HANDLER_PROCESS, HANDLER_HYPERV
REFUSED = None

# (host build, edition, image or None for the default, isolation, expected image, handler)
# expected image None = ImageMismatch.
TABLE = [
    # defaults: newest matching nanoserver tag, process isolation on servers only
    (14393, "server", None, None, CORE["ltsc2016"], P),  # no supported Nano Server 2016
    (14393, "client", None, None, CORE["ltsc2016"], H),
    (17763, "server", None, None, NANO["1809"], P),
    (17763, "client", None, None, NANO["1809"], H),
    (19042, "client", None, None, NANO["1809"], H),
    (19045, "client", None, None, NANO["1809"], H),
    (20348, "server", None, None, NANO["ltsc2022"], P),
    (22621, "client", None, None, NANO["ltsc2022"], H),
    (25398, "server", None, None, NANO["ltsc2022"], P),  # 23H2 has no images of its own
    (26100, "server", None, None, NANO["ltsc2025"], P),
    (26100, "client", None, None, NANO["ltsc2025"], H),
    (26200, "client", None, None, NANO["ltsc2025"], H),
    (26100, "server", None, "hyperv", NANO["ltsc2025"], H),
    (17763, "client", None, "process", REFUSED, None),
    # explicit images
    (14393, "server", CORE["ltsc2016"], None, CORE["ltsc2016"], P),
    (14393, "server", NANO["ltsc2022"], None, REFUSED, None),
    (14393, "server", NANO["1809"], "hyperv", REFUSED, None),
    (17763, "server", NANO["1809"], None, NANO["1809"], P),
    (17763, "server", NANO["ltsc2022"], None, REFUSED, None),
    (17763, "server", NANO["ltsc2022"], "hyperv", REFUSED, None),
    (17763, "server", CORE["ltsc2016"], None, CORE["ltsc2016"], H),
    (17763, "server", CORE["ltsc2016"], "process", REFUSED, None),
    (19042, "client", CORE["ltsc2019"], None, CORE["ltsc2019"], H),
    (19042, "client", CORE["ltsc2019"], "process", REFUSED, None),
    (19042, "client", NANO["ltsc2022"], None, REFUSED, None),
    (19045, "client", NANO["1809"], "hyperv", NANO["1809"], H),
    (19045, "client", NANO["ltsc2022"], None, REFUSED, None),
    (20348, "server", NANO["ltsc2022"], None, NANO["ltsc2022"], P),
    (20348, "server", NANO["1809"], None, NANO["1809"], H),
    (20348, "server", NANO["1809"], "process", REFUSED, None),
    (20348, "server", NANO["ltsc2025"], None, REFUSED, None),
    (22621, "client", NANO["ltsc2022"], None, NANO["ltsc2022"], H),
    (22621, "client", NANO["ltsc2022"], "process", REFUSED, None),
    (22621, "client", NANO["ltsc2025"], None, REFUSED, None),
    (25398, "server", CORE["ltsc2022"], None, CORE["ltsc2022"], P),
    (25398, "server", NANO["ltsc2025"], None, REFUSED, None),
    (25398, "server", NANO["1809"], "process", REFUSED, None),
    (26100, "server", NANO["ltsc2025"], None, NANO["ltsc2025"], P),
    (26100, "server", NANO["ltsc2022"], "process", NANO["ltsc2022"], P),  # stable ABI
    (26100, "server", CORE["ltsc2019"], None, CORE["ltsc2019"], H),
    (26100, "client", CORE["ltsc2025"], None, CORE["ltsc2025"], H),
    (26100, "client", CORE["ltsc2025"], "process", REFUSED, None),
    (26200, "client", NANO["ltsc2025"], "hyperv", NANO["ltsc2025"], H),
    (26200, "client", NANO["ltsc2022"], None, NANO["ltsc2022"], H),
    (26200, "client", NANO["ltsc2025"], "process", REFUSED, None),
    # the multi-arch pause image: a variant for 17763, 20348 and 26100
    (14393, "server", DEFAULT_PAUSE_IMAGE, None, REFUSED, None),
    (17763, "server", DEFAULT_PAUSE_IMAGE, None, DEFAULT_PAUSE_IMAGE, P),
    (17763, "client", DEFAULT_PAUSE_IMAGE, None, DEFAULT_PAUSE_IMAGE, H),
    (19042, "client", DEFAULT_PAUSE_IMAGE, None, REFUSED, None),
    (19045, "client", DEFAULT_PAUSE_IMAGE, None, REFUSED, None),
    (20348, "server", DEFAULT_PAUSE_IMAGE, None, DEFAULT_PAUSE_IMAGE, P),
    (22621, "client", DEFAULT_PAUSE_IMAGE, None, DEFAULT_PAUSE_IMAGE, H),
    (25398, "server", DEFAULT_PAUSE_IMAGE, None, DEFAULT_PAUSE_IMAGE, P),
    (26100, "server", DEFAULT_PAUSE_IMAGE, None, DEFAULT_PAUSE_IMAGE, P),
    (26100, "client", DEFAULT_PAUSE_IMAGE, "process", REFUSED, None),
    (26200, "client", DEFAULT_PAUSE_IMAGE, None, DEFAULT_PAUSE_IMAGE, H),
]


def _id(row: tuple) -> str:
    host, edition, image, iso, want, _ = row
    img = (image or "default").rsplit("/", 1)[-1]
    return f"{host}-{edition}-{img}-{iso or 'auto'}-{'ok' if want else 'refused'}"


@pytest.mark.parametrize("host,edition,image,isolation,want,handler", TABLE,
                         ids=[_id(r) for r in TABLE])
def test_table(host, edition, image, isolation, want, handler):
    if want is None:
        with pytest.raises(ImageMismatch) as exc:
            choose_image(host, edition, image=image, isolation=isolation)
        msg = str(exc.value)
        assert "\n" not in msg
        assert str(host) in msg and edition in msg
        return
    choice = choose_image(host, edition, image=image, isolation=isolation)
    assert isinstance(choice, ImageChoice)
    assert (choice.image, choice.runtime_handler) == (want, handler)
    assert choice.isolation == ("process" if handler == P else "hyperv")
    assert choice.image_build <= host
    if choice.isolation == "process":
        assert edition == "server" and process_compatible(host, choice.image_build)


PAUSE_VARIANT = {17763: 17763, 20348: 20348, 22621: 20348, 25398: 20348, 26100: 26100, 26200: 26100}


@pytest.mark.parametrize("host,variant", sorted(PAUSE_VARIANT.items()))
def test_pause_variant_build(host, variant):
    edition = "client" if host in (22621, 26200) else "server"
    assert check_sandbox_image(host, edition).image_build == variant


# ---------------------------------------------------------------- field case C10


def test_c10_host_17763_refuses_nanoserver_ltsc2022():
    with pytest.raises(ImageMismatch) as exc:
        choose_image(17763, "server", image=NANO["ltsc2022"])
    msg = str(exc.value)
    assert "\n" not in msg
    assert "17763" in msg and "ltsc2019" in msg
    assert "nanoserver:1809" in msg  # the real Nano Server tag for build 17763
    assert "process isolation" in msg


def test_c10_short_name_refused_too():
    with pytest.raises(ImageMismatch, match="17763"):
        choose_image(17763, "server", image="nanoserver:ltsc2022")


@pytest.mark.parametrize("image", [NANO["1809"], CORE["ltsc2019"], NANO["ltsc2022"],
                                   CORE["ltsc2022"], CORE["ltsc2025"], f"{MCR}servercore:20H2",
                                   f"{MCR}nanoserver:10.0.19042.1889"])
def test_c10_win10_20h2_client_process_isolation_suggests_hyperv(image):
    with pytest.raises(ImageMismatch) as exc:
        choose_image(19042, "client", image=image, isolation="process")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "19042" in msg and "client" in msg
    assert "Hyper-V" in msg


def test_c10_win10_20h2_client_suggests_runtime_handler_for_old_image():
    with pytest.raises(ImageMismatch) as exc:
        choose_image(19042, "client", image=CORE["ltsc2019"], isolation="process")
    assert HANDLER_HYPERV in str(exc.value)


@pytest.mark.parametrize("image", ["docker.io/library/alpine", "alpine:3.20", "busybox",
                                   "docker.io/library/busybox:1.36", "python:3.12-slim"])
@pytest.mark.parametrize("host,edition", [(17763, "server"), (19042, "client"), (26100, "server")])
def test_c10_linux_image_on_windows_refused(image, host, edition):
    with pytest.raises(ImageMismatch) as exc:
        choose_image(host, edition, image=image)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "Linux image" in msg and "Windows images" in msg
    assert str(host) in msg


def test_c10_defaults_pick_tag_and_handler():
    assert choose_image(17763, "server") == ImageChoice(NANO["1809"], 17763, "process", P)
    assert choose_image(19042, "client") == ImageChoice(NANO["1809"], 17763, "hyperv", H)
    assert choose_image(26100, "server", flavor="servercore") == ImageChoice(
        CORE["ltsc2025"], 26100, "process", P)


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize("ref,build", [
    (NANO["ltsc2022"], 20348),
    (NANO["ltsc2025"], 26100),
    (NANO["1809"], 17763),
    (CORE["ltsc2019"], 17763),
    (CORE["ltsc2016"], 14393),
    ("mcr.microsoft.com/windows/servercore:ltsc2022-amd64", 20348),
    ("mcr.microsoft.com/windows/nanoserver:1809-KB4493509", 17763),
    ("mcr.microsoft.com/windows/nanoserver:10.0.20348.2227", 20348),
    ("mcr.microsoft.com/windows/servercore:20H2", 19042),
    ("mcr.microsoft.com/windows:1809", 17763),
    ("mcr.microsoft.com/windows/nanoserver:ltsc2022@sha256:" + "a" * 64, 20348),
    ("python:3.12-windowsservercore-ltsc2025", 26100),
    ("golang:1.22-nanoserver-1809", 17763),
    ("nanoserver:ltsc2022", 20348),
    ("docker.io/library/alpine", None),
    ("busybox", None),
    (DEFAULT_PAUSE_IMAGE, None),
    ("myregistry.local:5000/app:1809", None),  # a bare release id on a non-Windows repo
    ("myregistry.local:5000/app", None),
])
def test_image_build(ref, build):
    assert image_build(ref) == build


def test_linux_detection():
    assert is_linux_image("alpine") and is_linux_image("docker.io/library/busybox:latest")
    assert is_linux_image("golang:1.22-alpine")
    assert not is_linux_image(NANO["ltsc2022"])
    assert not is_linux_image("golang:1.22-nanoserver-ltsc2022")
    assert not is_linux_image(DEFAULT_PAUSE_IMAGE)
    assert not is_linux_image("myregistry.local/app:1.0")


def test_multiarch_rule():
    variants = (17763, 20348, 26100)
    assert multiarch_variant(17763, variants) == 17763
    assert multiarch_variant(19045, variants) is None  # < 20348 needs an exact build
    assert multiarch_variant(14393, variants) is None
    assert multiarch_variant(22621, variants) == 20348
    assert multiarch_variant(25398, variants) == 20348
    assert multiarch_variant(26100, variants) == 26100
    assert multiarch_variant(26200, variants) == 26100
    assert multiarch_builds("registry.k8s.io/pause:3.10.2") == variants
    assert multiarch_builds("registry.k8s.io/pause:3.10.1") == (17763, 20348)
    assert multiarch_builds("registry.k8s.io/pause:3.8") is None
    assert multiarch_builds("registry.k8s.io/pause") is None


def test_pause_refusal_explains():
    with pytest.raises(ImageMismatch) as exc:
        check_sandbox_image(19045, "client")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "19045" in msg and "17763" in msg and "20348" in msg and "26100" in msg


def test_unknown_custom_image_is_accepted_unchecked():
    srv = choose_image(20348, "server", image="myregistry.local/app:1.0")
    assert srv == ImageChoice("myregistry.local/app:1.0", UNKNOWN_BUILD, "process", P)
    cli = choose_image(22621, "client", image="myregistry.local/app:1.0")
    assert cli.runtime_handler == H
    with pytest.raises(ImageMismatch):
        choose_image(22621, "client", image="myregistry.local/app:1.0", isolation="process")


@pytest.mark.parametrize("given,want", [
    (None, None), ("process", "process"), ("hyperv", "hyperv"), ("Hyper-V", "hyperv"),
    (HANDLER_PROCESS, "process"), (HANDLER_HYPERV, "hyperv"), ("default", None),
])
def test_normalize_isolation(given, want):
    assert normalize_isolation(given) == want


def test_bad_arguments():
    with pytest.raises(ValueError):
        normalize_isolation("vm")
    with pytest.raises(ValueError):
        choose_image(20348, "datacenter")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        choose_image(20348, "server", flavor="windows-full")
