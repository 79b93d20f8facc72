"""Settings, lowest to highest: built-in defaults, versions.toml, dockless.toml, environment, flags.

What decides which plugins load (``cni``, disabled plugins) is read here, never from invoke's
config, because invoke loads its own config files only after ``tasks.py`` is imported.
"""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockless.versions import KNOWN_PINS, Pins, VersionError, load_pins

TARGETS = ("windows", "linux")
SERVICES = ("windows-service", "systemd", "process")
REPO = Path(__file__).resolve().parent.parent
TOP_LEVEL_KEYS = {"target", "root", "mirror", "cni", "service", "disable_plugins", "versions", "host"}
HOST_KEYS = {"windows_build", "windows_ubr", "edition", "user_profile", "interfaces"}


class SettingsError(ValueError):
    """Bad settings input: the message names the input and the fix."""


def host_os() -> str:
    return "windows" if sys.platform == "win32" else "linux"


def default_service(target: str) -> str:
    if target == "windows":
        return "windows-service"
    return "systemd" if Path("/run/systemd/system").is_dir() else "process"


@dataclass
class Settings:
    """Everything a run needs to know that is not probed from the host."""

    target: str
    host: str
    service: str
    pins: Pins
    root: str | None = None
    mirror: str | None = None
    cni: str | None = None
    disabled_plugins: tuple[str, ...] = ()
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    assumed_host: dict[str, Any] = field(default_factory=dict)
    config_file: Path | None = None
    force: bool = False
    fs_root: Path | None = None  # maps Windows paths onto a local folder (tests, dry demos)
    fresh: bool = False  # plan as for a new host: nothing probed or read (bundle, versions.lock)

    def section(self, name: str) -> dict[str, Any]:
        return self.sections.get(name, {})

    def with_flags(self, **flags: Any) -> Settings:
        """Task flags are the highest layer: ``target``, ``force`` …; ``None`` keeps the value."""
        changes = {k: v for k, v in flags.items() if v is not None}
        if "target" in changes:
            _check_choice("--target", changes["target"], TARGETS)
            if "service" not in changes and self.service not in _services_for(changes["target"]):
                changes["service"] = default_service(changes["target"])
        return replace(self, **changes)

    @property
    def native(self) -> bool:
        """True when the target's files and commands are this machine's own."""
        return not self.fresh and (self.target == self.host or self.fs_root is not None)


def _services_for(target: str) -> tuple[str, ...]:
    return ("windows-service",) if target == "windows" else ("systemd", "process")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"{name} = {value!r} is not one of: {', '.join(choices)}")


def versions_file() -> Path:
    env = os.environ.get("DOCKLESS_VERSIONS")
    if env:
        return Path(env)
    local = Path.cwd() / "versions.toml"
    return local if local.is_file() else REPO / "versions.toml"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    if raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise SettingsError(f"{path}: starts with a byte-order mark; save it as UTF-8 without BOM")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: not valid UTF-8 TOML ({exc})") from None


def load_settings(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Build :class:`Settings` from the layers; any bad input raises :class:`SettingsError`."""
    env = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    cfg_path = Path(env["DOCKLESS_CONFIG"]) if env.get("DOCKLESS_CONFIG") else cwd / "dockless.toml"
    if env.get("DOCKLESS_CONFIG") and not cfg_path.is_file():
        raise SettingsError(f"DOCKLESS_CONFIG={cfg_path}: no such file")
    data = _read_config(cfg_path)
    sections = {k: v for k, v in data.items() if isinstance(v, dict) and k not in ("versions", "host")}
    for key, value in data.items():
        if key not in TOP_LEVEL_KEYS and not isinstance(value, dict):
            raise SettingsError(
                f"{cfg_path.name}: unknown setting {key!r}; top-level keys are {', '.join(sorted(TOP_LEVEL_KEYS))}"
            )
        if key in TOP_LEVEL_KEYS - {"versions", "host"} and isinstance(value, dict):
            # e.g. `[cni] bin_dir = ...` (field case C06) used to become the cni provider's name
            hint = "; the CNI directories are [paths] cni_bin_dir / cni_conf_dir" if key == "cni" else ""
            raise SettingsError(f"{cfg_path.name}: [{key}] is not a table: {key} = \"...\" is one value{hint}")
    host_facts = dict(data.get("host", {}))
    for key in host_facts:
        if key not in HOST_KEYS:
            raise SettingsError(f"{cfg_path.name}: [host] {key!r} is unknown; known: {', '.join(sorted(HOST_KEYS))}")
    try:
        pins = load_pins(versions_file(), KNOWN_PINS)
        if "versions" in data:
            pins = pins.merged(dict(data["versions"]), f"{cfg_path.name} [versions]", KNOWN_PINS)
    except VersionError as exc:
        raise SettingsError(str(exc)) from None

    def pick(key: str, env_name: str) -> Any:
        return env.get(env_name) or data.get(key)

    target = pick("target", "DOCKLESS_TARGET") or host_os()
    _check_choice("DOCKLESS_TARGET" if env.get("DOCKLESS_TARGET") else "target", target, TARGETS)
    service = pick("service", "DOCKLESS_SERVICE") or default_service(target)
    _check_choice("DOCKLESS_SERVICE" if env.get("DOCKLESS_SERVICE") else "service", service, SERVICES)
    if service not in _services_for(target):
        raise SettingsError(f"service = {service!r} does not exist on {target}; use one of {', '.join(_services_for(target))}")
    disabled = pick("disable_plugins", "DOCKLESS_DISABLE_PLUGINS") or ()
    if isinstance(disabled, str):
        disabled = tuple(p.strip() for p in disabled.split(",") if p.strip())
    root = pick("root", "DOCKLESS_ROOT")
    if root and target == host_os() and not Path(root).is_absolute():
        raise SettingsError(f"DOCKLESS_ROOT={root!r} must be an absolute path")
    return Settings(
        target=target,
        host=host_os(),
        service=service,
        pins=pins,
        root=root or None,
        mirror=(pick("mirror", "DOCKLESS_MIRROR") or None),
        cni=pick("cni", "DOCKLESS_CNI") or None,
        disabled_plugins=tuple(disabled),
        sections=sections,
        assumed_host=host_facts,
        config_file=cfg_path if cfg_path.is_file() else None,
    )
