"""Settings, lowest to highest: built-in defaults, versions.toml, dockless.toml, environment, flags.

What decides which plugins load (``cni``, disabled plugins) is read here, never from invoke's
config, because invoke loads its own config files only after ``tasks.py`` is imported.

Every value is checked where it is read, so bad input is one line naming it (``SettingsError``)
before anything runs. What needs the installed components (unknown tables, each component's
``[section]``) is checked by :func:`check_tables` and :func:`component_config` once the plugins
are loaded (``Session`` calls them).
"""
from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dockless.model import Setting, at_least, config_key, toml_value
from dockless.files import read_toml
from dockless.versions import KNOWN_PINS, Pins, VersionError, load_pins

if TYPE_CHECKING:
    from dockless.model import Component

TARGETS = ("windows", "linux")
SERVICES = ("windows-service", "systemd", "process")
REPO = Path(__file__).resolve().parent.parent
TOP_LEVEL_KEYS = ("target", "root", "mirror", "cni", "service", "disable_plugins")
"""The top-level values of dockless.toml (each also has a ``DOCKLESS_*`` variable)."""
HOST_TABLES = ("host", "paths", "sha256", "unverified", "versions")
"""The tables of dockless.toml the host reads itself; every other table is a component's."""
PATH_KEYS = ("cni_bin_dir", "cni_conf_dir", "install_dir")
ENV_NAMES = {key: f"DOCKLESS_{key.upper()}" for key in TOP_LEVEL_KEYS}
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
MIN_WINDOWS_BUILD = 14393
_VALUE_EXAMPLES = {
    "target": "windows", "root": "/srv/dockless", "mirror": "https://mirror.example.com/github",
    "cni": "cni-nat", "service": "process",
}
_TABLE_EXAMPLES = {
    "host": "windows_build = 20348",
    "paths": "cni_bin_dir = 'C:\\opt\\cni\\bin'",
    "sha256": '"asset-file-name" = "<64 hex digits>"',
    "unverified": 'allow = ["asset-file-name"]',
    "versions": 'containerd = "1.7.20"',
}


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
    # top-level keys of dockless.toml that are neither values nor host tables: checked with the
    # components (check_tables), which are only known once the plugins are loaded
    unknown_keys: tuple[str, ...] = ()
    config_name: str = "dockless.toml"
    # a table's name as written ([cni-bridge]) by its config key (cni_bridge), for messages
    spelled: dict[str, str] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.sections.get(name, {})

    def with_flags(self, **flags: Any) -> Settings:
        """Task flags are the highest layer: ``target``, ``force`` …; ``None`` keeps the value."""
        changes = {k: v for k, v in flags.items() if v is not None}
        if "target" in changes:
            _check_choice(f"--target {changes['target']!r}", changes["target"], TARGETS)
            if "service" not in changes and self.service not in _services_for(changes["target"]):
                changes["service"] = default_service(changes["target"])
        return replace(self, **changes)

    @property
    def native(self) -> bool:
        """True when the target's files and commands are this machine's own."""
        return not self.fresh and (self.target == self.host or self.fs_root is not None)


def _services_for(target: str) -> tuple[str, ...]:
    return ("windows-service",) if target == "windows" else ("systemd", "process")


def _check_choice(said: str, value: object, choices: tuple[str, ...]) -> None:
    """``said`` names the input as the user wrote it (``DOCKLESS_TARGET='macos'``)."""
    if value not in choices:
        raise SettingsError(f"{said} is not one of: {', '.join(choices)}")


def versions_file(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """``DOCKLESS_VERSIONS``, else ``versions.toml`` in ``cwd``, else the one next to dockless."""
    env = (environ or {}).get("DOCKLESS_VERSIONS") or os.environ.get("DOCKLESS_VERSIONS")
    if env:
        return Path(env)
    local = (cwd or Path.cwd()) / "versions.toml"
    return local if local.is_file() else REPO / "versions.toml"


def _read_config(path: Path, said: str | None = None) -> dict[str, Any]:
    """The TOML in ``path``; ``{}`` when there is none (``said``: the variable that named it,
    for which a missing file is an error)."""
    data = read_toml(path, SettingsError, who=said, what="a file; point it to a dockless.toml")
    if data is None:
        if said:
            raise SettingsError(f"{said}: no such file; point it to a dockless.toml or unset it")
        return {}
    return data


def _said(key: str, value: object, env_name: str | None, cfg: str) -> str:
    """How the user wrote it: ``DOCKLESS_ROOT='x'`` or ``root = 'x' in dockless.toml``."""
    return f"{env_name}={value!r}" if env_name else f"{key} = {value!r} in {cfg}"


def parse_bool(text: str, said: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{said} is not a yes/no value: use 1, true or yes (or 0, false, no)")


# -- [host]: facts a Windows plan cannot probe from another OS -------------------------------------------
def _windows_build(value: int) -> str | None:
    from dockless.winimages import KNOWN_BUILDS

    if value >= MIN_WINDOWS_BUILD:
        return None
    return (f"must be a Windows build of {MIN_WINDOWS_BUILD} (Windows Server 2016) or newer; "
            f"known: {', '.join(map(str, KNOWN_BUILDS))}")


def windows_absolute(value: str) -> str | None:
    """A check: an absolute Windows path (``C:\\Users\\me`` or ``\\\\server\\share``)."""
    path = PureWindowsPath(value)
    return None if path.drive and path.root else "must be an absolute Windows path such as C:\\Users\\me"


def _interfaces(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return None
    return "must be a list of tables such as [{ IPAddress = \"192.168.1.10\", PrefixLength = 24 }]"


HOST_FACTS: dict[str, Setting] = {
    "windows_build": Setting(20348, "the host's Windows build", kind=int, check=_windows_build),
    "windows_ubr": Setting(0, "the host's update build revision", kind=int, check=at_least(0)),
    "edition": Setting("server", "server or client", choices=("client", "server")),
    "user_profile": Setting("C:\\Users\\Administrator", "the user's profile folder (crictl.yaml)", kind=str,
                            check=windows_absolute),
    "interfaces": Setting(None, "the host's IPv4 addresses, as Get-NetIPAddress lists them", check=_interfaces),
}
HOST_KEYS = set(HOST_FACTS)


def _check_host(facts: dict[str, Any], cfg: str) -> dict[str, Any]:
    for key, value in facts.items():
        if key not in HOST_FACTS:
            raise SettingsError(f"{cfg}: [host] {key!r} is unknown;{_close(key, HOST_FACTS)} known: {', '.join(sorted(HOST_FACTS))}")
        problem = HOST_FACTS[key].problem(key, value)
        if problem:
            raise SettingsError(f"{cfg}: [host] {problem}")
    return dict(facts)


def _close(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" did you mean {close[0]!r}?" if close else ""


# -- [paths], [unverified] ----------------------------------------------------------------------------------
def _check_paths(table: dict[str, Any], cfg: str) -> None:
    for key, value in table.items():
        if key not in PATH_KEYS:
            raise SettingsError(f"{cfg}: [paths] {key!r} is unknown;{_close(key, PATH_KEYS)} known: {', '.join(PATH_KEYS)}")
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{cfg}: [paths] {key} = {value!r} must be a path string, such as {key} = "
                                f"{toml_value(PATH_EXAMPLES['windows'][key])} (Windows) or {toml_value(PATH_EXAMPLES['linux'][key])} (Linux)")


PATH_EXAMPLES = {
    "windows": {"cni_bin_dir": "C:\\opt\\cni\\bin", "cni_conf_dir": "C:\\opt\\cni\\conf",
                "install_dir": "C:\\Program Files\\containerd"},
    "linux": {"cni_bin_dir": "/opt/cni/bin", "cni_conf_dir": "/etc/cni/net.d", "install_dir": "/usr/local"},
}


def check_target_path(key: str, value: Any, target: str) -> PureWindowsPath | PurePosixPath:
    """``[paths] key = value`` as a path of ``target`` (absolute, of that OS's kind)."""
    example = PATH_EXAMPLES[target].get(key, "C:\\opt\\x" if target == "windows" else "/opt/x")
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"[paths] {key} = {value!r} must be a path string, such as {key} = {toml_value(example)}")
    if target == "windows":
        path: PureWindowsPath | PurePosixPath = PureWindowsPath(value)
        if not (path.drive and path.root):
            raise SettingsError(f"[paths] {key} = {value!r} must be a Windows path such as {example} (the target is windows)")
        return path
    path = PurePosixPath(value)
    if not path.is_absolute():
        kind = "is a Windows path; on linux" if PureWindowsPath(value).drive else "must be absolute:"
        raise SettingsError(f"[paths] {key} = {value!r} {kind} write an absolute path such as {example}")
    return path


def _check_unverified(table: dict[str, Any], cfg: str) -> None:
    for key, value in table.items():
        if key != "allow":
            raise SettingsError(f"{cfg}: [unverified] {key!r} is unknown;{_close(key, ['allow'])} "
                                f"the one key is allow = [\"asset-file-name\"]")
        if not isinstance(value, list):
            raise SettingsError(f"{cfg}: [unverified] allow = {value!r} must be a list, such as allow = "
                                f"{toml_value([value] if isinstance(value, str) else ['asset-file-name'])}")
        for item in value:
            if not isinstance(item, str) or not item.strip() or "/" in item or "\\" in item:
                raise SettingsError(f"{cfg}: [unverified] allow lists {item!r}: name an asset by its file name, "
                                    f"such as \"crictl-v1.36.0-windows-amd64.tar.gz\" (no folder, no URL)")


# -- the mirror -----------------------------------------------------------------------------------------------
def _check_mirror(value: str, said: str, cwd: Path) -> None:
    from dockless.urls import DRIVE_PATH

    text = value.strip()
    scheme = "" if DRIVE_PATH.match(text) else urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        if not urlsplit(text).netloc:
            raise SettingsError(f"{said} has no host name: write a URL such as https://mirror.example.com/github")
        return
    if scheme == "file":
        parts = urlsplit(text)
        local = unquote(parts.path)
        if parts.netloc and parts.netloc != "localhost":
            local = f"//{parts.netloc}{local}"
        path = Path(local)
    elif scheme == "":
        path = Path(text)
        path = path if path.is_absolute() else cwd / path
    else:
        raise SettingsError(f"{said}: {scheme}:// is not supported; use an http(s):// URL, a file:// URL or a folder")
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise SettingsError(f"{said}: {path} {what}; a mirror is a folder laid out like github.com "
                            f"(`invoke bundle` writes one) or an http(s):// URL")


# -- loading ----------------------------------------------------------------------------------------------------
def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Build :class:`Settings` from the layers; any bad input raises :class:`SettingsError`."""
    env = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    if env.get("DOCKLESS_CONFIG"):
        cfg_path = Path(env["DOCKLESS_CONFIG"])
        data = _read_config(cfg_path, f"DOCKLESS_CONFIG={cfg_path}")
    else:
        cfg_path = cwd / "dockless.toml"
        data = _read_config(cfg_path)
    cfg = cfg_path.name

    # the shape: top-level values, the host's tables, one table per component
    sections: dict[str, dict[str, Any]] = {}
    spelled: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in data.items():
        if key in TOP_LEVEL_KEYS:
            if isinstance(value, dict):
                # e.g. `[cni] bin_dir = ...` (field case C06) used to become the cni provider's name
                hint = "; the CNI directories are [paths] cni_bin_dir / cni_conf_dir" if key == "cni" else ""
                raise SettingsError(f"{cfg}: [{key}] is not a table: {key} = \"...\" is one value{hint}")
            continue
        if key in HOST_TABLES:
            if not isinstance(value, dict):
                raise SettingsError(f"{cfg}: {key} = {value!r} must be a table: write [{key}] and below it "
                                    f"one line per entry, such as {_TABLE_EXAMPLES[key]}")
            continue
        if not isinstance(value, dict):
            unknown.append(key)
            continue
        name = config_key(key)
        if name in sections:
            raise SettingsError(f"{cfg}: [{spelled[name]}] and [{key}] are the same table; merge them into [{name}]")
        sections[name], spelled[name] = value, key
    for table in ("paths", "unverified"):
        if table in data:
            sections[table] = data[table]
    _check_paths(data.get("paths", {}), cfg)
    _check_unverified(data.get("unverified", {}), cfg)
    host_facts = _check_host(data.get("host", {}), cfg)

    # pins: versions.toml, then [versions] (and [sha256]) in dockless.toml
    vfile = versions_file(env, cwd)
    if env.get("DOCKLESS_VERSIONS") and not vfile.exists():
        raise SettingsError(f"DOCKLESS_VERSIONS={vfile}: no such file; point it to a versions.toml or unset it")
    try:
        pins = load_pins(vfile, KNOWN_PINS)
        if "versions" in data:
            pins = pins.merged(dict(data["versions"]), f"{cfg} [versions]", KNOWN_PINS)
        if "sha256" in data:
            pins = pins.merged({"sha256": data["sha256"]}, cfg, KNOWN_PINS)
    except VersionError as exc:
        raise SettingsError(str(exc)) from None

    def pick(key: str) -> tuple[Any, str]:
        """The value (environment over dockless.toml) and how the user wrote it."""
        env_name = ENV_NAMES[key]
        if env.get(env_name):
            return env[env_name], _said(key, env[env_name], env_name, cfg)
        value = data.get(key)
        if value is not None and not isinstance(value, str) and key != "disable_plugins":
            raise SettingsError(f"{_said(key, value, None, cfg)} must be a string, such as {key} = {toml_value(_VALUE_EXAMPLES[key])}")
        return value, _said(key, value, None, cfg)

    target, said = pick("target")
    target = target or host_os()
    _check_choice(said, target, TARGETS)
    service, said = pick("service")
    service = service or default_service(target)
    _check_choice(said, service, SERVICES)
    if service not in _services_for(target):
        raise SettingsError(f"{said} does not exist on {target}; use one of {', '.join(_services_for(target))}")

    disabled, said = pick("disable_plugins")
    if isinstance(disabled, str):
        disabled = [p.strip() for p in disabled.split(",") if p.strip()]
    if disabled is None:
        disabled = []
    if not isinstance(disabled, list) or not all(isinstance(p, str) and p.strip() for p in disabled):
        raise SettingsError(f"{said} must be a list of plugin names, such as disable_plugins = [\"crictl\"] "
                            f"(`invoke plugins` lists them)")

    root, said = pick("root")
    if "DOCKLESS_ROOT" in env and not env["DOCKLESS_ROOT"].strip():
        raise SettingsError("DOCKLESS_ROOT is set but empty: set it to an absolute path or unset it")
    if root is not None and not root.strip():
        raise SettingsError(f"root = '' in {cfg}: set it to an absolute path or remove the line")
    if root and target == host_os() and not Path(root).is_absolute():
        raise SettingsError(f"{said} must be an absolute path, such as {Path(root).absolute()}")

    mirror, said = pick("mirror")
    if mirror:
        _check_mirror(mirror, said, cwd)
    cni, _ = pick("cni")

    force = False
    if env.get("DOCKLESS_FORCE", "").strip():
        force = parse_bool(env["DOCKLESS_FORCE"], f"DOCKLESS_FORCE={env['DOCKLESS_FORCE']!r}")
    return Settings(
        target=target,
        host=host_os(),
        service=service,
        pins=pins,
        root=root or None,
        mirror=mirror or None,
        cni=cni or None,
        disabled_plugins=tuple(p.strip() for p in disabled),
        sections=sections,
        assumed_host=host_facts,
        config_file=cfg_path if cfg_path.is_file() else None,
        force=force,
        unknown_keys=tuple(unknown),
        config_name=cfg,
        spelled=spelled,
    )


# -- what needs the components: unknown tables, each component's [section] -------------------------------
def accepted_keys(components: Iterable[Component]) -> str:
    """Every top-level key and table dockless.toml accepts, for messages."""
    tables = sorted({c.key for c in components} | set(HOST_TABLES))
    return (f"top-level keys: {', '.join(sorted(TOP_LEVEL_KEYS))}; "
            f"tables: {', '.join(f'[{t}]' for t in tables)}")


def check_tables(settings: Settings, components: Iterable[Component]) -> None:
    """Refuse top-level keys and tables of dockless.toml that nothing reads (typos such as
    ``[containred]``), naming everything that is accepted. The table of a disabled plugin's
    component is left alone (one dockless.toml, some hosts disable the plugin)."""
    components = list(components)
    keys = {c.key for c in components}
    quiet = {config_key(name.removeprefix("dockless.")) for name in settings.disabled_plugins}
    cfg = settings.config_name
    for key in settings.unknown_keys:
        if config_key(key) in keys:
            raise SettingsError(f"{cfg}: {key} must be a table: write [{key}] and below it one setting per line "
                                f"(`invoke plugins --settings` lists them)")
        raise SettingsError(f"{cfg}: unknown setting {key!r};{_close(key, [*TOP_LEVEL_KEYS, *keys])} {accepted_keys(components)}")
    for name in settings.sections:
        if name in HOST_TABLES or name in keys or name in quiet:
            continue
        written = settings.spelled.get(name, name)
        raise SettingsError(f"{cfg}: unknown table [{written}];{_close(name, [*keys, *HOST_TABLES])} "
                            f"{accepted_keys(components)} (a plugin that is not installed has no table)")


def component_config(comp: Component, given: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``comp``'s declared defaults merged with its ``[section]``; an unknown key or a value of
    the wrong kind, outside ``choices`` or refused by its ``check`` raises :class:`SettingsError`
    (``where``: the file, put before the message)."""
    at = f"{where}: " if where else ""
    unknown = sorted(set(given) - set(comp.settings))
    if unknown:
        key = unknown[0]
        known = ", ".join(sorted(comp.settings)) or "none"
        raise SettingsError(f"{at}[{comp.key}] {key!r} is not a setting of {comp.name};{_close(key, comp.settings)} known: {known}")
    merged = {k: s.default for k, s in comp.settings.items()}
    for key, value in given.items():
        try:
            problem = comp.settings[key].problem(key, value)
        except Exception as exc:  # a plugin's check that fails is the plugin's bug: name it
            raise SettingsError(f"{at}[{comp.key}] {key}: the check of {comp.name} failed on {value!r} "
                                f"({type(exc).__name__}: {exc}); report it to the plugin's authors") from None
        if problem:
            raise SettingsError(f"{at}[{comp.key}] {problem}")
        merged[key] = value
    return merged
