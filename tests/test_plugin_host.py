"""The plugin host under misbehaving and competing plugins (issue 7, "What it must show" #2).

Every test builds fresh managers (entry points off, throwaway plugins passed as ``extra``); the
entry-point tests put a real ``*.dist-info`` folder on ``sys.path``, as ``pip install`` would.
"""
from __future__ import annotations

import importlib.metadata

import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from invoke import Exit, MockContext

from dockless import hookimpl
from dockless.manager import builtin_plugins, call_each, check_settings, collect, plugin_manager, plugin_versions
from dockless.model import Component, Step
from dockless.registry import PluginError, Registry
from dockless.settings import load_settings


# -- throwaway plugins --------------------------------------------------------------------------------
def _noop_plan(session: Any) -> list[Any]:
    return []


def _noop_task(c: Any) -> None:
    """A step task of a test plugin."""


def component(name: str, *, role: str | None = None, platforms: tuple[str, ...] = ("windows", "linux"),
              requires: tuple[str, ...] = ()) -> Component:
    return Component(name=name, role=role, platforms=platforms, requires=requires,
                     steps=(Step("install", _noop_plan, _noop_task, platforms=platforms),))


def plugin(name: str, *components: Component, **hooks: Callable[..., Any]) -> SimpleNamespace:
    """A plugin object named ``name`` that registers ``components`` (and any other hooks)."""

    @hookimpl
    def dockless_register_components(registry: Registry) -> None:
        for comp in components:
            registry.add(comp)

    impls = {"dockless_register_components": dockless_register_components}
    impls.update({k: hookimpl(v) for k, v in hooks.items()})
    return SimpleNamespace(__name__=name, **impls)


def registry_with(*plugins: object, disabled: tuple[str, ...] = ()) -> Registry:
    return collect(plugin_manager(entry_points=False, extra=plugins, disabled=disabled))


def active(reg: Registry, target: str, cni: str | None = None) -> list[str]:
    return [c.name for c in reg.select(target, {"cni": cni})]


# -- roles ------------------------------------------------------------------------------------------------
def test_installed_provider_alone_never_takes_over() -> None:
    reg = registry_with(plugin("acme-cni", component("acme", role="cni", platforms=("linux",))))
    assert "cni-bridge" in active(reg, "linux") and "acme" not in active(reg, "linux")
    assert reg.inactive["acme"] == "blocked: cni is cni-bridge"


def test_selected_provider_blocks_the_default_and_what_only_it_needs() -> None:
    reg = registry_with(plugin("acme-cni", component("acme", role="cni", platforms=("windows",), requires=("containerd",))))
    names = active(reg, "windows", cni="acme")
    assert "acme" in names and "cni-nat" not in names and "hns" not in names
    assert reg.inactive["cni-nat"] == "blocked: cni is acme"
    assert reg.inactive["hns"] == "blocked: only needed by cni-nat"
    assert "preflight" in names  # containerd still needs it


def test_two_providers_without_selection_name_both_and_how_to_choose() -> None:
    reg = registry_with(plugin("acme-cni", component("acme", role="cni", platforms=("linux",))),
                        plugin("zeta-cni", component("zeta", role="cni", platforms=("linux",))),
                        disabled=("cni-bridge",))
    with pytest.raises(PluginError) as err:
        reg.select("linux", {"cni": None})
    msg = str(err.value)
    assert "'acme' (acme-cni)" in msg and "'zeta' (zeta-cni)" in msg
    assert "DOCKLESS_CNI=NAME" in msg and 'cni = "NAME" in dockless.toml' in msg
    assert active(reg, "linux", cni="zeta")[-1] == "zeta"  # a choice settles it


def test_a_third_party_role_with_one_provider_is_active() -> None:
    reg = registry_with(plugin("dns-plugin", component("coredns", role="dns")))
    assert "coredns" in active(reg, "linux")


def test_unknown_provider_lists_the_installed_ones() -> None:
    reg = registry_with(plugin("acme-cni", component("acme", role="cni", platforms=("windows",))))
    with pytest.raises(PluginError, match=r"cni provider 'calco' is not installed; installed cni providers: cni-nat, cni-bridge, acme"):
        reg.select("windows", {"cni": "calco"})


def test_a_choice_for_another_platform_keeps_this_targets_default() -> None:
    reg = registry_with(plugin("acme-cni", component("acme", role="cni", platforms=("windows",))))
    assert "cni-bridge" in active(reg, "linux", cni="acme")
    assert reg.inactive["acme"] == "not for linux"


def test_installing_a_provider_alone_does_not_change_the_plan(dockless_plan: Any) -> None:
    provider = plugin("acme-cni", component("acme", role="cni", platforms=("windows", "linux"), requires=("containerd",)))
    for target in ("windows", "linux"):
        before = [e.as_json() for e in dockless_plan(target)]
        assert [e.as_json() for e in dockless_plan(target, None, [provider])] == before
        chosen = [e.task for e in dockless_plan(target, {"cni": "acme"}, [provider])]
        assert chosen[-1] == "cni.install" and "cni.config" not in chosen


# -- failure isolation ------------------------------------------------------------------------------------
def test_a_plugin_raising_in_a_hook_is_named_with_the_hook() -> None:
    @hookimpl
    def dockless_register_components(registry: Registry) -> None:
        raise KeyError("subnet")

    bad = SimpleNamespace(__name__="flaky-plugin", dockless_register_components=dockless_register_components)
    with pytest.raises(PluginError) as err:
        registry_with(bad)
    assert str(err.value) == ("plugin 'flaky-plugin' failed in dockless_register_components: KeyError: 'subnet'; "
                              "disable it with DOCKLESS_DISABLE_PLUGINS=flaky-plugin")


def test_a_plugin_raising_in_check_settings_is_named() -> None:
    def dockless_check_settings(settings: dict[str, Any], target: str) -> list[str]:
        raise ValueError("boom")

    pm = plugin_manager(entry_points=False, extra=(plugin("checker", dockless_check_settings=dockless_check_settings),))
    with pytest.raises(PluginError, match="plugin 'checker' failed in dockless_check_settings: ValueError: boom"):
        check_settings(pm, {}, "linux")


def test_check_settings_must_return_lines() -> None:
    def dockless_check_settings(settings: dict[str, Any], target: str) -> Any:
        return "one string"

    pm = plugin_manager(entry_points=False, extra=(plugin("sloppy", dockless_check_settings=dockless_check_settings),))
    with pytest.raises(PluginError, match="plugin 'sloppy' returned 'one string' from dockless_check_settings"):
        check_settings(pm, {}, "linux")


def test_check_settings_problems_stop_plan_and_setup_one_line_each(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dockless import core_tasks, namespace

    def dockless_check_settings(settings: dict[str, Any], target: str) -> list[str]:
        assert settings["containerd"]["log_level"] == "info" and target == "linux"
        return ["[containerd] log_level = 'info' is too quiet: use debug", "second problem"]

    settings = load_settings({"DOCKLESS_TARGET": "linux", "DOCKLESS_ROOT": str(tmp_path)}, cwd=tmp_path)
    monkeypatch.setattr(namespace, "_LOADED", {})
    monkeypatch.setattr(core_tasks, "_LOADED", namespace._LOADED)
    namespace.load(settings, entry_points=False, extra=(plugin("picky", dockless_check_settings=dockless_check_settings),))
    for run in (lambda c: core_tasks.plan(c, json=True), lambda c: core_tasks.setup(c)):
        with pytest.raises(Exit) as err:
            run(MockContext())
        assert err.value.message == ("picky: [containerd] log_level = 'info' is too quiet: use debug\n"
                                     "picky: second problem")
        assert err.value.code == 2


def test_an_invalid_hook_implementation_names_the_plugin() -> None:
    @hookimpl
    def dockless_register_components(registry: Registry, target: str) -> None:  # `target` is not passed
        pass

    bad = SimpleNamespace(__name__="typo-plugin", dockless_register_components=dockless_register_components)
    with pytest.raises(PluginError, match="plugin 'typo-plugin' has an invalid hook implementation"):
        plugin_manager(entry_points=False, extra=(bad,))


def test_a_hook_dockless_does_not_have_names_the_plugin() -> None:
    @hookimpl
    def dockless_register_tasks(registry: Registry) -> None:
        pass

    bad = SimpleNamespace(__name__="future-plugin", dockless_register_tasks=dockless_register_tasks)
    with pytest.raises(PluginError, match="plugin 'future-plugin' implements a hook dockless does not have"):
        plugin_manager(entry_points=False, extra=(bad,))


def test_call_each_reports_the_plugin_and_resets_the_owner() -> None:
    reg = Registry()
    builtins = [name for name, _module in builtin_plugins()]
    pm = plugin_manager(entry_points=False, disabled=builtins, extra=(plugin("solo", component("solo")),))
    call_each(pm, "dockless_register_components", reg, registry=reg)
    assert reg.owners == {"solo": "solo"} and reg.current_plugin == "<unknown>"


# -- graph errors ------------------------------------------------------------------------------------------
def test_a_cycle_from_a_plugins_requires_names_the_cycle() -> None:
    reg = registry_with(plugin("loopy", component("ping", requires=("pong",)), component("pong", requires=("ping",))))
    with pytest.raises(PluginError) as err:
        reg.select("linux", {})
    msg = str(err.value)
    assert msg.startswith("requires form a cycle: ") and msg.endswith("; remove one of these requires")
    cycle = msg.removeprefix("requires form a cycle: ").split(";")[0].split(" -> ")
    assert set(cycle) == {"ping", "pong"} and cycle[0] == cycle[-1]


def test_a_cycle_through_a_role_names_the_provider() -> None:
    reg = registry_with(plugin("loopy-cni", component("loop-cni", role="cni", platforms=("linux",), requires=("watcher",)),
                               component("watcher", platforms=("linux",), requires=("cni",))))
    assert "cni-bridge" in active(reg, "linux")  # not selected: no cycle in this graph
    with pytest.raises(PluginError, match=r"requires form a cycle: .*loop-cni.*watcher|requires form a cycle: .*watcher.*loop-cni"):
        reg.select("linux", {"cni": "loop-cni"})


def test_a_duplicate_component_names_both_plugins() -> None:
    with pytest.raises(PluginError) as err:
        registry_with(plugin("my-containerd", component("containerd")))
    assert str(err.value) == ("component 'containerd' is registered by both 'dockless.containerd' and 'my-containerd': "
                              "disable one with DOCKLESS_DISABLE_PLUGINS=my-containerd")


def test_an_unknown_requirement_names_component_plugin_and_requirement() -> None:
    reg = registry_with(plugin("needy", component("needy", requires=("buildkitd",))))
    with pytest.raises(PluginError, match=r"component 'needy' \(needy\) requires 'buildkitd', which no plugin provides"):
        reg.select("linux", {})


# -- DOCKLESS_DISABLE_PLUGINS -----------------------------------------------------------------------------
def test_disable_plugins_skips_builtins_and_extras(tmp_path: Path) -> None:
    settings = load_settings({"DOCKLESS_DISABLE_PLUGINS": "crictl, noisy"}, cwd=tmp_path)
    assert settings.disabled_plugins == ("crictl", "noisy")
    reg = registry_with(plugin("noisy", component("noisy")), disabled=settings.disabled_plugins)
    assert "crictl" not in reg.components and "noisy" not in reg.components
    assert "crictl" not in active(reg, "linux")


# -- entry points: a real dist-info on sys.path -------------------------------------------------------------
def install_dist(site: Path, dist: str, version: str, module: str, source: str, entry: str | None = None) -> None:
    """What ``pip install`` leaves: the module and ``<dist>-<version>.dist-info`` with the entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[dockless]\n{entry or dist} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_a_plugin_raising_at_load_is_named_and_can_be_disabled(site: Path) -> None:
    install_dist(site, "dockless-broken", "0.3.0", "dockless_broken_plugin", "raise ImportError('no module named hcsshim')\n",
                 entry="broken")
    with pytest.raises(PluginError) as err:
        plugin_manager(entry_points=True)
    assert str(err.value) == ("plugin 'broken' (dockless_broken_plugin) failed to load: ImportError: no module named hcsshim; "
                              "disable it with DOCKLESS_DISABLE_PLUGINS=broken")
    pm = plugin_manager(entry_points=True, disabled=("broken",))
    assert not pm.has_plugin("broken")


def test_an_installed_plugin_shows_its_distribution_version(site: Path) -> None:
    install_dist(site, "dockless-acme", "1.2.3", "dockless_acme_plugin", """
        from dockless import hookimpl
        from dockless.model import Component

        @hookimpl
        def dockless_register_components(registry):
            registry.add(Component(name="acme", role="cni", platforms=("linux",), steps=()))
    """, entry="acme")
    others = {ep.name for ep in importlib.metadata.entry_points(group="dockless")} - {"acme"}
    pm = plugin_manager(entry_points=True, disabled=tuple(others))  # only ours, whatever else is installed
    assert plugin_versions(pm)["acme"] == "dockless-acme==1.2.3"
    assert plugin_versions(pm)["dockless.containerd"] == "builtin"
    reg = collect(pm)
    assert reg.owners["acme"] == "acme" and "acme" not in active(reg, "linux")


def test_two_distributions_with_one_plugin_name_are_refused(site: Path) -> None:
    body = "from dockless import hookimpl\n"
    install_dist(site, "dockless-one", "1.0.0", "dockless_one_plugin", body, entry="twin")
    install_dist(site, "dockless-two", "2.0.0", "dockless_two_plugin", body, entry="twin")
    with pytest.raises(PluginError, match="two plugins are named 'twin'"):
        plugin_manager(entry_points=True)


# -- invoke plugins ----------------------------------------------------------------------------------------
def test_plugins_task_lists_plugins_versions_components_roles_and_blocked(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dockless import core_tasks, namespace

    settings = load_settings({"DOCKLESS_TARGET": "windows", "DOCKLESS_CNI": "acme", "DOCKLESS_DISABLE_PLUGINS": "crictl"}, cwd=tmp_path)
    monkeypatch.setattr(namespace, "_LOADED", {})
    monkeypatch.setattr(core_tasks, "_LOADED", namespace._LOADED)
    namespace.load(settings, entry_points=False,
                   extra=(plugin("acme-cni", component("acme", role="cni", platforms=("windows",), requires=("containerd",))),))
    core_tasks.plugins(MockContext(), settings=True)
    out = capsys.readouterr().out
    rows = {line.split()[2]: line.split() for line in out.splitlines()[2:] if line.startswith("  ") and len(line.split()) >= 6}
    assert out.splitlines()[0] == "plugins for windows (cni = acme)"
    assert rows["acme"][:6] == ["acme-cni", "local", "acme", "cni", "windows", "active"]
    assert rows["cni-nat"][:5] == ["dockless.cni-nat", "builtin", "cni-nat", "cni", "windows"]
    assert " ".join(rows["cni-nat"][5:]) == "blocked: cni is acme"
    assert " ".join(rows["hns"][5:]) == "blocked: only needed by cni-nat"
    assert " ".join(rows["runc"][5:]) == "not for windows"
    assert "disabled: crictl" in out
    assert "[containerd] log_level = \"info\"  (one of: \"trace\", \"debug\", \"info\", \"warn\", \"error\")" in out
