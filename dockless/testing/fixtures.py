"""pytest fixtures for dockless and its plugin authors, loaded through the ``pytest11`` entry point
``dockless`` (installing dockless is enough; nothing to add to a conftest.py).

========================  ===================================================================
fixture                   what it gives
========================  ===================================================================
``dockless_pm``           a fresh plugin manager: the built-ins, entry points off
``dockless_registry``     ``make(extra_plugins=(), disabled=()) -> Registry`` (hooks called)
``dockless_plan``         ``plan(target, settings_overrides, extra_plugins) -> list[PlanEntry]``
                          (a dry run, as ``invoke plan --json``; settings problems raise)
``windows_host``          a :class:`~dockless.testing.windows.FakeWindowsHost` (a MockContext
                          that answers the batched probes and models HNS, services, Defender)
                          whose ``C:\\`` is ``tmp_path/fs``
``release_mirror``        a github.com-shaped release tree served on 127.0.0.1
                          (:class:`ReleaseMirror`), usable as ``DOCKLESS_MIRROR``
========================  ===================================================================

Everything dockless is imported inside the fixtures, so pytest starts as fast with this plugin
as without it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dockless.registry import Registry
    from dockless.session import PlanEntry, Session
    from dockless.settings import Settings
    from dockless.testing.httpserver import LocalHTTPServer


@pytest.fixture
def dockless_pm() -> Any:
    """A fresh plugin manager with the built-ins only (entry points off)."""
    from dockless.manager import plugin_manager

    return plugin_manager(entry_points=False)


def make_registry(extra_plugins: Iterable[object] = (), disabled: Iterable[str] = ()) -> Registry:
    """The registry of a fresh manager: built-ins, then ``extra_plugins`` (modules or objects
    with ``@dockless.hookimpl`` functions); entry points off, so installed packages never leak in."""
    from dockless.manager import collect, plugin_manager

    return collect(plugin_manager(entry_points=False, disabled=disabled, extra=tuple(extra_plugins)))


@pytest.fixture
def dockless_registry() -> Callable[..., Registry]:
    """``make(extra_plugins=(), disabled=()) -> Registry``."""
    return make_registry


@dataclass
class PlanRunner:
    """What ``dockless_plan`` hands out: call it like ``invoke plan --json``.

    ``settings_overrides`` has the shape of dockless.toml: top-level keys (``cni``, ``service``,
    ``host``, ``versions`` …) and one table per component (``{"calico": {"mode": "vxlan"}}``).
    It goes through the real settings loader (a dockless.toml in a temporary folder), so a bad
    value fails as it would for a user. A plan for this machine's own OS gets a private
    ``DOCKLESS_ROOT`` (unless ``root`` is given), so it plans for a fresh host and never reads
    this machine's files. The last session is kept in :attr:`session`.
    """

    workdir: Path
    session: Session | None = None
    runs: int = 0
    environ: dict[str, str] = field(default_factory=dict)

    def settings(self, target: str = "windows", settings_overrides: Mapping[str, Any] | None = None) -> Settings:
        import tomlkit

        from dockless.settings import host_os, load_settings

        self.runs += 1
        folder = self.workdir / f"run{self.runs}"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "dockless.toml"
        config.write_text(tomlkit.dumps(dict(settings_overrides or {})), encoding="utf-8")
        env = {"DOCKLESS_TARGET": target, "DOCKLESS_CONFIG": str(config), **self.environ}
        if target == host_os() and "root" not in (settings_overrides or {}):
            env.setdefault("DOCKLESS_ROOT", str(self.workdir / "root"))  # a fresh host, not this machine's files
        return load_settings(env, cwd=folder)

    def problems(self, target: str = "windows", settings_overrides: Mapping[str, Any] | None = None,
                 extra_plugins: Iterable[object] = (), disabled: Iterable[str] = ()) -> list[str]:
        """What ``dockless_check_settings`` reports (each line prefixed with the plugin's name)."""
        from dockless.manager import check_settings, plugin_manager

        settings = self.settings(target, settings_overrides)
        pm = plugin_manager(entry_points=False, disabled=disabled, extra=tuple(extra_plugins))
        session = self._session(settings, pm)
        return check_settings(pm, {c.key: session.config(c.name) for c in session.components}, target)

    def __call__(self, target: str = "windows", settings_overrides: Mapping[str, Any] | None = None,
                 extra_plugins: Iterable[object] = (), disabled: Iterable[str] = (),
                 context: Any = None) -> list[PlanEntry]:
        """The plan entries for ``target`` (in execution order). Raises ``SettingsError`` with
        one line per problem when a plugin's ``dockless_check_settings`` finds any. ``context``:
        an invoke (Mock)Context for steps that probe; by default a MockContext that runs
        nothing (a Windows plan on Linux probes nothing and plans for a fresh host)."""
        from dockless.manager import check_settings, plugin_manager
        from dockless.settings import SettingsError

        settings = self.settings(target, settings_overrides)
        pm = plugin_manager(entry_points=False, disabled=disabled, extra=tuple(extra_plugins))
        session = self._session(settings, pm, context)
        found = check_settings(pm, {c.key: session.config(c.name) for c in session.components}, target)
        if found:
            raise SettingsError("\n".join(found))
        return session.plan()

    def _session(self, settings: Settings, pm: Any, context: Any = None) -> Session:
        from invoke import MockContext

        from dockless.manager import collect
        from dockless.session import Session

        self.session = Session(context or MockContext(), settings, collect(pm), dry=True)
        return self.session


@pytest.fixture
def dockless_plan(tmp_path: Path) -> PlanRunner:
    """``plan(target="windows", settings_overrides=None, extra_plugins=()) -> list[PlanEntry]``;
    also ``plan.problems(...)`` (the settings check alone) and ``plan.session`` (the last one)."""
    return PlanRunner(tmp_path / "dockless-plan")


@pytest.fixture
def windows_host(tmp_path: Path) -> Any:
    """A fresh :class:`~dockless.testing.windows.FakeWindowsHost` (Windows Server 2022, elevated,
    Containers enabled) whose files live under ``tmp_path/fs``. Build a whole run with
    :func:`dockless.testing.windows.windows_settings` (``root=tmp_path``),
    :func:`~dockless.testing.windows.windows_session` and
    :func:`~dockless.testing.windows.run_setup`; answer your steps' probes through
    ``windows_host.probe_handlers["<collection>.<step>"] = fn(host, body)``."""
    from dockless.testing.windows import FakeWindowsHost, HostState

    return FakeWindowsHost(HostState(), fs_root=tmp_path / "fs")


@dataclass
class ReleaseMirror:
    """A github.com-shaped release tree (``<owner>/<repo>/releases/download/<tag>/<asset>``)
    served on 127.0.0.1: set ``DOCKLESS_MIRROR`` (or ``Settings.mirror``) to :attr:`url`, or to
    :attr:`root` (a folder mirror works as well)."""

    root: Path
    server: LocalHTTPServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def serve(self) -> str:
        """(Re)publish every file under :attr:`root`; returns :attr:`url`."""
        from dockless.testing.mirror import serve

        return serve(self.server, self.root)

    def add(self, repo: str, tag: str, asset: str, data: bytes, checksums: str | None = "SHA256SUMS") -> str:
        """Publish ``data`` as a release asset. ``checksums``: ``"SHA256SUMS"`` (one file per
        release listing ``<hex>  <asset>`` lines, appended to), ``".sha256"`` (a file beside the
        asset) or ``None``. Returns the asset's URL on the mirror."""
        import hashlib

        from dockless.testing.mirror import release_path

        rel = release_path(repo, tag, asset)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        line = f"{hashlib.sha256(data).hexdigest()}  {asset}\n"
        if checksums == "SHA256SUMS":
            sums = path.parent / "SHA256SUMS"
            kept = [x for x in (sums.read_text().splitlines(True) if sums.exists() else []) if not x.rstrip().endswith(f"  {asset}")]
            sums.write_text("".join(kept) + line)
        elif checksums == ".sha256":
            path.with_name(asset + ".sha256").write_text(line)
        self.serve()
        return f"{self.url}/{rel}"

    def windows(self, versions: Mapping[str, str] | None = None) -> dict[str, str]:
        """The built-ins' Windows assets (stand-in binaries) for ``versions`` (default: the pins
        of versions.toml); returns the sha256 pins to add to the settings (``hns.psm1``)."""
        from dockless.testing.mirror import windows_mirror

        pins = windows_mirror(self.root, dict(versions or _pinned()))
        self.serve()
        return pins

    def linux(self, versions: Mapping[str, str] | None = None, crictl: Path | None = None) -> None:
        """The built-ins' Linux assets packed from this machine's Debian binaries."""
        from dockless.testing.mirror import linux_mirror

        linux_mirror(self.root, dict(versions or _pinned()), crictl)
        self.serve()


def _pinned() -> dict[str, str]:
    from dockless.settings import versions_file
    from dockless.versions import load_pins

    return dict(load_pins(versions_file()).versions)


@pytest.fixture
def release_mirror(tmp_path: Path) -> Iterator[ReleaseMirror]:
    """An empty :class:`ReleaseMirror` on a free 127.0.0.1 port; fill it with ``add``,
    ``windows`` or ``linux``."""
    from dockless.testing.httpserver import LocalHTTPServer

    root = tmp_path / "mirror"
    root.mkdir()
    with LocalHTTPServer() as server:
        yield ReleaseMirror(root, server)
