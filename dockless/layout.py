"""Where everything lives on the target, in one place (field case C06: one source of truth).

Windows paths are ``PureWindowsPath`` so the Windows plan can be built on any OS; Linux paths
live under ``DOCKLESS_ROOT`` (like DESTDIR) when it is set.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

from dockless.settings import PATH_KEYS, Settings, SettingsError, check_target_path

WINDOWS_PIPE = r"\\.\pipe\containerd-containerd"


@dataclass(frozen=True)
class Layout:
    """Target paths. ``address`` is the containerd endpoint (pipe or socket path)."""

    target: str
    install_dir: PurePath
    bin_dir: PurePath
    containerd_config: PurePath
    containerd_root: PurePath
    containerd_state: PurePath
    address: str
    cni_bin_dir: PurePath
    cni_conf_dir: PurePath
    crictl_config: PurePath
    dockless_dir: PurePath  # manifest, pid file, logs, downloaded helper modules
    log_file: PurePath

    @property
    def crictl_endpoint(self) -> str:
        if self.target == "windows":
            return "npipe://./pipe/" + self.address.rsplit("\\", 1)[-1]
        return f"unix://{self.address}"

    def exe(self, name: str) -> PurePath:
        return self.bin_dir / (f"{name}.exe" if self.target == "windows" else name)


def _override(settings: Settings, key: str, default: PurePath, cls: type[PurePath]) -> PurePath:
    value = settings.section("paths").get(key)
    if value is None:
        return default
    try:
        return check_target_path(key, value, settings.target)
    except SettingsError as exc:
        if settings.config_file is None:
            raise
        raise SettingsError(f"{settings.config_name}: {exc}") from None


def layout_for(settings: Settings) -> Layout:
    """Compute the layout for ``settings.target``; ``[paths]`` in dockless.toml may move the
    CNI dirs, and the same values feed both the installs and config.toml."""
    unknown = set(settings.section("paths")) - set(PATH_KEYS)
    if unknown:
        raise SettingsError(f"[paths] {sorted(unknown)[0]!r} is unknown; known: {', '.join(PATH_KEYS)}")
    if settings.target == "windows":
        base = PureWindowsPath(settings.root) if settings.root else PureWindowsPath("C:\\")
        install = _override(settings, "install_dir", base / "Program Files" / "containerd", PureWindowsPath)
        data = base / "ProgramData" / "containerd"
        profile = settings.assumed_host.get("user_profile") or str(base / "Users" / "Administrator")
        return Layout(
            target="windows",
            install_dir=install,
            bin_dir=install / "bin",
            containerd_config=install / "config.toml",
            containerd_root=data / "root",
            containerd_state=data / "state",
            address=WINDOWS_PIPE,
            cni_bin_dir=_override(settings, "cni_bin_dir", install / "cni" / "bin", PureWindowsPath),
            cni_conf_dir=_override(settings, "cni_conf_dir", install / "cni" / "conf", PureWindowsPath),
            crictl_config=PureWindowsPath(profile) / ".crictl" / "crictl.yaml",
            dockless_dir=base / "ProgramData" / "dockless",
            log_file=base / "ProgramData" / "dockless" / "containerd.log",
        )
    root = PurePosixPath(settings.root or "/")
    install = _override(settings, "install_dir", root / "usr" / "local", PurePosixPath)
    state = root / "run" / "containerd"
    return Layout(
        target="linux",
        install_dir=install,
        bin_dir=install / "bin",
        containerd_config=root / "etc" / "containerd" / "config.toml",
        containerd_root=root / "var" / "lib" / "containerd",
        containerd_state=state,
        address=str(state / "containerd.sock"),
        cni_bin_dir=_override(settings, "cni_bin_dir", root / "opt" / "cni" / "bin", PurePosixPath),
        cni_conf_dir=_override(settings, "cni_conf_dir", root / "etc" / "cni" / "net.d", PurePosixPath),
        crictl_config=root / "etc" / "crictl.yaml",
        dockless_dir=root / "var" / "lib" / "dockless",
        log_file=root / "var" / "lib" / "dockless" / "containerd.log",
    )


def local_path(settings: Settings, path: PurePath) -> Path:
    """The real file behind a target path: itself on a native host, or mapped under ``fs_root``
    (``C:\\Program Files\\x`` → ``<fs_root>/C/Program Files/x``) for Windows plans run elsewhere."""
    if settings.fs_root is not None and isinstance(path, PureWindowsPath):
        drive = path.drive.rstrip(":") or "C"
        return Path(settings.fs_root, drive, *path.parts[1:])
    return Path(path)
