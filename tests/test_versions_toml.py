"""versions.toml validation (field case C01 and friends): every problem is one line naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from dockless.bundle import fresh_session, planned_artifacts
from dockless.manager import collect, plugin_manager
from dockless.settings import SettingsError, load_settings
from dockless.versions import KNOWN_PINS, Version, VersionError, load_pins

COMMIT = "48b403efa770cec7495722c270557480d9d7277a"
PINS = {"containerd": "2.2.7", "runc": "1.3.0", "cni-plugins": "1.6.2", "windows-cni": "0.3.1",
        "crictl": "1.36.0", "hns-module-commit": COMMIT}


def settings_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versions_toml: str, dockless_toml: str = "") -> object:
    path = tmp_path / "versions.toml"
    path.write_text(versions_toml, encoding="utf-8")
    (tmp_path / "dockless.toml").write_text(dockless_toml, encoding="utf-8")
    monkeypatch.setenv("DOCKLESS_VERSIONS", str(path))
    return load_settings({"DOCKLESS_CONFIG": str(tmp_path / "dockless.toml")})


def toml(pins: dict[str, str]) -> str:
    return "".join(f'{k} = "{v}"\n' for k, v in pins.items())


def one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versions_toml: str, dockless_toml: str = "") -> str:
    with pytest.raises(SettingsError) as err:
        settings_from(tmp_path, monkeypatch, versions_toml, dockless_toml)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# -- C01: v-prefix or not, the tag has one v and the asset none --------------------------------------------
@pytest.mark.parametrize("pin", ["v1.7.20", "1.7.20"])
def test_c01_leading_v_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pin: str) -> None:
    settings = settings_from(tmp_path, monkeypatch, toml({**PINS, "containerd": pin}))
    registry = collect(plugin_manager(entry_points=False))
    artifacts = {a.key: a for a in planned_artifacts(fresh_session(settings, registry, "windows"))}  # type: ignore[arg-type]
    url = artifacts["containerd"].urls[0]
    assert url == "https://github.com/containerd/containerd/releases/download/v1.7.20/containerd-1.7.20-windows-amd64.tar.gz"
    assert "vv" not in url and artifacts["containerd"].version == "1.7.20"
    assert artifacts["containerd"].checksum_urls[0] == url + ".sha256sum"


@pytest.mark.parametrize("pin", ["v1.7.20", "1.7.20", " 1.7.20 "])
def test_c01_version_tag_and_string(pin: str) -> None:
    v = Version.parse(pin, "containerd")
    assert (str(v), v.tag) == ("1.7.20", "v1.7.20")


@pytest.mark.parametrize("pin", ["latest", "1.7", "1.7.x", "v1.7", "1.7.*", "", "vv1.7.20"])
def test_c01_partial_or_floating_versions_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pin: str) -> None:
    msg = one_line_error(tmp_path, monkeypatch, toml({**PINS, "containerd": pin}))
    assert msg.startswith("versions.toml: containerd = ") and repr(pin) in msg
    assert "MAJOR.MINOR.PATCH" in msg


def test_c01_refused_in_dockless_toml_versions_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = one_line_error(tmp_path, monkeypatch, toml(PINS), '[versions]\ncrictl = "latest"\n')
    assert msg.startswith("dockless.toml [versions]: crictl = 'latest'")


# -- unknown keys, wrong types, bad digests ---------------------------------------------------------------
def test_unknown_component_key_names_it_and_suggests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = one_line_error(tmp_path, monkeypatch, toml({**PINS, "containred": "1.7.20"}))
    assert "unknown component 'containred'" in msg and "did you mean 'containerd'?" in msg
    assert msg.startswith("versions.toml: ")


def test_unknown_component_in_dockless_toml_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = one_line_error(tmp_path, monkeypatch, toml(PINS), '[versions]\nkubelet = "1.31.0"\n')
    assert msg.startswith("dockless.toml [versions]: unknown component 'kubelet'")
    for key in KNOWN_PINS:
        assert key in msg


def test_pin_must_be_a_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = one_line_error(tmp_path, monkeypatch, 'runc = 1.3\n')
    assert "runc must be a string" in msg


def test_commit_pin_must_be_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = one_line_error(tmp_path, monkeypatch, toml({**PINS, "hns-module-commit": "48b403e"}))
    assert "hns-module-commit = '48b403e'" in msg and "40-hex" in msg


def test_bad_sha256_names_the_asset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = one_line_error(tmp_path, monkeypatch, toml(PINS) + '[sha256]\n"runc.amd64" = "abc"\n')
    assert "'runc.amd64'" in msg and "64 hex" in msg


def test_not_toml_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = one_line_error(tmp_path, monkeypatch, 'containerd = "1.7.20\n')
    assert "not valid TOML" in msg


# -- a missing pin is one line naming the key, when the plan needs it ---------------------------------------
def test_missing_pin_names_the_key_in_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from invoke import Context

    from dockless.session import Session

    settings = settings_from(tmp_path, monkeypatch, toml({k: v for k, v in PINS.items() if k != "windows-cni"}))
    registry = collect(plugin_manager(entry_points=False))
    session = Session(Context(), settings.with_flags(target="windows"), registry, dry=True)  # type: ignore[attr-defined]
    blocked = {e.task: e.blocked for e in session.plan() if e.blocked}
    assert {"cni.install", "cni.config"} <= set(blocked)  # both steps need the pin
    msg = blocked["cni.install"]
    assert "\n" not in msg
    assert "no pin for 'windows-cni'" in msg and 'add windows-cni = "X.Y.Z"' in msg


def test_missing_versions_file_means_no_pins(tmp_path: Path) -> None:
    pins = load_pins(tmp_path / "absent.toml", KNOWN_PINS)
    assert pins.versions == {}
    with pytest.raises(VersionError, match="no pin for 'containerd'"):
        pins.version("containerd")


def test_repo_versions_toml_is_valid() -> None:
    pins = load_pins(Path(__file__).resolve().parent.parent / "versions.toml", KNOWN_PINS)
    assert set(pins.versions) == set(KNOWN_PINS)
