"""The Windows plan from Linux (issue 2 #2) and every PowerShell script dockless can emit.

``DOCKLESS_TARGET=windows invoke plan --json`` runs as a real subprocess: a JSON list of
``{task, changes, files, commands}`` in a valid dependency order over the steps of the five
Windows components and preflight, with config.toml, 0-containerd-nat.conf and crictl.yaml at
their Windows paths. Then every script — from the plan, from FakeWindowsHost runs through the
scenarios that reach every branch, from ``probe_script`` of all probes and from every step's
undo — must parse with the tree-sitter PowerShell grammar and use no PowerShell 7 syntax.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Exit

from dockless import powershell
from dockless.actions import PowerShell
from dockless.manager import collect, plugin_manager
from dockless.registry import Registry
from dockless.settings import load_settings
from dockless.testing.mirror import windows_mirror
from dockless.testing.windows import FakeWindowsHost, HostState, run_setup, windows_session, windows_settings

REPO = Path(__file__).resolve().parent.parent
WINDOWS_STEPS = {"preflight.check", "preflight.features", "containerd.install", "containerd.config",
                 "containerd.service", "defender.exclude", "hns.module", "hns.network", "cni.install",
                 "cni.config", "crictl.install", "crictl.config"}
CONFIG = r"C:\Program Files\containerd\config.toml"
NAT_CONF = r"C:\Program Files\containerd\cni\conf\0-containerd-nat.conf"


def invoke_plan(tmp_path: Path, *args: str, target_env: bool = True) -> subprocess.CompletedProcess[str]:
    """``invoke plan ARGS`` in the repo, as a user on Linux would run it (no dockless.toml)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    empty = tmp_path / "dockless.toml"
    empty.write_text("")
    env["DOCKLESS_CONFIG"] = str(empty)
    if target_env:
        env["DOCKLESS_TARGET"] = "windows"
    proc = subprocess.run([sys.executable, "-m", "invoke", "plan", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def plan_json(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return json.loads(invoke_plan(tmp_path_factory.mktemp("plan"), "--json").stdout)


def component_of_task(registry: Registry) -> dict[str, str]:
    comps = registry.select("windows", {"cni": None})
    return {f"{Registry.collection_name(c)}.{s.name}": c.name for c in comps for s in c.steps_for("windows")}


def test_plan_json_is_a_list_of_steps_with_task_changes_files_commands(plan_json: list[dict[str, Any]]) -> None:
    assert isinstance(plan_json, list) and plan_json
    for entry in plan_json:
        assert set(entry) >= {"task", "changes", "files", "commands"}, entry
        assert isinstance(entry["task"], str)
        assert all(isinstance(c, str) for c in entry["changes"])
        assert all(isinstance(c, str) for c in entry["commands"])
        assert all(set(f) >= {"path", "content"} for f in entry["files"])
    tasks = [e["task"] for e in plan_json]
    assert len(tasks) == len(set(tasks))
    assert set(tasks) == WINDOWS_STEPS
    # a fresh host: everything but the host checks has something to do
    assert {e["task"] for e in plan_json if e["changes"]} == WINDOWS_STEPS - {"preflight.check", "preflight.features"}


def test_plan_json_is_in_a_valid_dependency_order(plan_json: list[dict[str, Any]]) -> None:
    registry = collect(plugin_manager(entry_points=False))
    owner = component_of_task(registry)
    tasks = [e["task"] for e in plan_json]
    comps = {c.name: c for c in registry.select("windows", {"cni": None})}
    assert {owner[t] for t in tasks} == {"preflight", "containerd", "defender", "cni-nat", "hns", "crictl"}
    role_of = {c.role: c.name for c in comps.values() if c.role}
    position = {t: i for i, t in enumerate(tasks)}
    for task in tasks:
        comp = comps[owner[task]]
        for req in comp.requires:
            dep = role_of.get(req, req)
            if dep not in comps:
                continue  # a requirement for another platform (runc)
            for other in tasks:
                if owner[other] == dep:
                    assert position[other] < position[task], f"{other} must come before {task}"
    # and the facts the graph must encode, whatever the plugins declare
    for before, after in [("preflight.check", "containerd.install"), ("containerd.install", "containerd.config"),
                          ("containerd.config", "containerd.service"), ("containerd.install", "defender.exclude"),
                          ("hns.module", "hns.network"), ("hns.network", "cni.config"),
                          ("cni.install", "cni.config"), ("containerd.service", "crictl.config")]:
        assert position[before] < position[after], f"{before} must come before {after}"


def test_plan_json_files_have_windows_destinations(plan_json: list[dict[str, Any]]) -> None:
    files = {f["path"]: f["content"] for e in plan_json for f in e["files"]}
    assert CONFIG in files and NAT_CONF in files
    (crictl,) = [p for p in files if p.endswith(r"\.crictl\crictl.yaml")]
    assert crictl.startswith("C:\\Users\\")
    assert "version = 3" in files[CONFIG]  # containerd 2.2 (versions.toml) reads schema 3
    assert "bin_dirs = ['C:\\Program Files\\containerd\\cni\\bin']" in files[CONFIG]
    conf = json.loads(files[NAT_CONF])
    assert (conf["name"], conf["type"], conf["ipam"]["subnet"]) == ("nat", "nat", "10.0.0.0/16")
    assert "runtime-endpoint: npipe://./pipe/containerd-containerd" in files[crictl]
    by_task = {e["task"]: e for e in plan_json}
    assert [f["path"] for f in by_task["containerd.config"]["files"]] == [CONFIG]
    assert [f["path"] for f in by_task["cni.config"]["files"]] == [NAT_CONF]
    assert [f["path"] for f in by_task["crictl.config"]["files"]] == [crictl]


def test_plan_json_commands_are_the_powershell_of_each_step(plan_json: list[dict[str, Any]]) -> None:
    by_task = {e["task"]: e for e in plan_json}
    service = "\n".join(by_task["containerd.service"]["commands"])
    assert "--register-service '--config' 'C:\\Program Files\\containerd\\config.toml'" in service
    assert "Start-Service containerd" in service
    assert by_task["defender.exclude"]["commands"] == [
        "Add-MpPreference -ExclusionProcess 'C:\\Program Files\\containerd\\bin\\containerd.exe'\n"]
    assert "New-HnsNetwork -Type NAT -Name 'nat' -AddressPrefix '10.0.0.0/16' -Gateway '10.0.0.1'" in \
        "\n".join(by_task["hns.network"]["commands"])


def test_plan_text_shows_powershell_files_and_assumptions(tmp_path: Path) -> None:
    out = invoke_plan(tmp_path).stdout
    assert "plan for windows" in out
    assert "assumed: windows_build" in out
    for needle in ("powershell: register the containerd service", "--register-service",
                   "Add-MpPreference -ExclusionProcess", "New-HnsNetwork -Type NAT",
                   f"write {CONFIG}", f"write {NAT_CONF}", r"\.crictl\crictl.yaml",
                   "max_conf_num = 1", '"cniVersion"', "npipe://./pipe/containerd-containerd"):
        assert needle in out, needle


def test_plan_target_flag_gives_the_same_windows_plan(tmp_path: Path, plan_json: list[dict[str, Any]]) -> None:
    flagged = json.loads(invoke_plan(tmp_path, "--target", "windows", "--json", target_env=False).stdout)
    assert [e["task"] for e in flagged] == [e["task"] for e in plan_json]


# -- every PowerShell script dockless can emit ------------------------------------------------------
@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    root = tmp_path_factory.mktemp("winmirror")
    pins = load_settings({"DOCKLESS_TARGET": "windows"}, cwd=root).pins
    versions = {k: str(v) for k, v in pins.versions.items()}
    return root / "mirror", windows_mirror(root / "mirror", versions), root / "cache"


def scenario_scripts(root: Path, mirror: tuple[Path, dict[str, str], Path]) -> Iterator[str]:
    """Full scripts (prelude included) FakeWindowsHost ran through scenarios that reach every
    script-building branch of the Windows steps, then their undo."""
    mirror_dir, pins, cache = mirror

    def session(host: FakeWindowsHost, name: str, sections: dict[str, Any] | None = None) -> Any:
        settings = windows_settings(root / name, mirror=mirror_dir, pins=pins, sections=copy.deepcopy(sections or {}))
        return windows_session(host, settings, cache=cache)

    def decoded(host: FakeWindowsHost) -> Iterator[str]:
        for command in host.commands:
            script = powershell.decode(command)
            assert script is not None
            yield script

    # a fresh server: probe, register, start, exclusion, network; then re-register and restart
    host = FakeWindowsHost(HostState())
    run_setup(session(host, "server"))
    run_setup(session(host, "server", {"containerd": {"log_level": "debug"}}))
    run_setup(session(host, "server", {"containerd": {"log_level": "debug", "sandbox_image": "registry.k8s.io/pause:3.10"}}))
    # undo of every step that has one, run on the fake host too
    s = session(host, "server", {"containerd": {"log_level": "debug", "sandbox_image": "registry.k8s.io/pause:3.10"}})
    for step_id, (comp, step) in reversed(list(s.steps.items())):
        for action in step.undo(s) if step.undo else []:
            assert isinstance(action, PowerShell) or not action.commands()
            action.run(s, comp.name)
    assert host.state.exclusions == [] and host.state.networks == []
    if s.steps["containerd.service"][1].undo is not None:
        assert host.state.service is None
    yield from decoded(host)

    # enabling features: server (ServerManager) and client (DISM) cmdlets
    for edition, features in (("server", {"Containers": "Disabled"}),
                              ("client", {"Containers": "Disabled", "Microsoft-Hyper-V": "Disabled"})):
        host = FakeWindowsHost(HostState(edition=edition, build=26100, features=features))
        with pytest.raises(Exit, match="reboot"):  # features enabled: setup stops for the reboot
            run_setup(session(host, edition), enable_features=True)
        yield from decoded(host)

    # Defender hiding its list; the probe on a host in the 5.1 array shapes
    host = FakeWindowsHost(HostState(defender="hidden", json_arrays="wrapped"))
    run_setup(session(host, "hidden"))
    yield from decoded(host)


def all_probes_script() -> str:
    from plugins.preflight import HOST_PROBE

    registry = collect(plugin_manager(entry_points=False))
    probes = {"host": HOST_PROBE}
    probes.update({sid: step.probe for sid, (_c, step) in
                   ((f"{Registry.collection_name(c)}.{s.name}", (c, s))
                    for c, s in Registry.steps(registry.select("windows", {"cni": None}), "windows")) if step.probe})
    assert set(probes) >= {"host", "containerd.service", "defender.exclude", "hns.network"}
    return powershell.PRELUDE + powershell.probe_script(probes)


def test_every_powershell_script_parses_and_is_windows_powershell_51(
        plan_json: list[dict[str, Any]], tmp_path: Path, mirror: tuple[Path, dict[str, str], Path]) -> None:
    pytest.importorskip("tree_sitter")
    pytest.importorskip("tree_sitter_powershell")
    from dockless.testing.powershell import parse_errors, ps7_only_constructs

    scripts: dict[str, str] = {}
    for entry in plan_json:
        for i, command in enumerate(entry["commands"]):
            scripts[powershell.PRELUDE + command] = f"plan {entry['task']} #{i}"
    scripts[all_probes_script()] = "probe_script of all probes"
    for i, script in enumerate(scenario_scripts(tmp_path, mirror)):
        scripts.setdefault(script, f"FakeWindowsHost run #{i}")

    emitted = "\n".join(scripts)
    for needle in ("ConvertTo-Json", "--register-service", "--unregister-service", "Start-Service",
                   "Restart-Service", "Add-MpPreference", "Remove-MpPreference", "New-HnsNetwork",
                   "Remove-HnsNetwork", "Enable-WindowsOptionalFeature", "Install-WindowsFeature"):
        assert needle in emitted, f"no scenario emitted {needle}"

    problems = []
    for script, origin in scripts.items():
        problems += [f"{origin}: syntax {e}" for e in parse_errors(script)]
        problems += [f"{origin}: PowerShell 7 only: {e}" for e in ps7_only_constructs(script)]
    assert not problems, "\n".join(problems)
