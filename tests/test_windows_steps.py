"""Command-level tests of every Windows step against FakeWindowsHost (issue 4 #2, #4; field
cases C05, C08, C09).

A whole Windows ``setup`` runs on Linux: files and downloads for real under ``fs_root`` (from a
local release mirror), every PowerShell command through the fake host, which answers the batched
probe in the JSON shapes of Windows PowerShell 5.1 and applies what the scripts change. The
usual pattern: converge a host, break one thing, run ``setup`` again and look at exactly what
PowerShell it ran.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest
from invoke import Exit

from dockless import powershell
from dockless.settings import load_settings
from dockless.testing.mirror import windows_mirror
from dockless.testing.windows import (
    FakeWindowsHost,
    HostState,
    Interface,
    Process,
    UnknownCommand,
    containerd_service_path,
    run_setup,
    windows_session,
    windows_settings,
)

EXE = r"C:\Program Files\containerd\bin\containerd.exe"
CONFIG = r"C:\Program Files\containerd\config.toml"
LOG = r"C:\ProgramData\dockless\containerd.log"
SERVICE_ARGS = ["--config", CONFIG, "--log-file", LOG, "--log-level", "info"]
NAT_CONF = r"C:\Program Files\containerd\cni\conf\0-containerd-nat.conf"
WINDOWS_STEPS = ["preflight.check", "preflight.features", "containerd.install", "containerd.config",
                 "containerd.service", "defender.exclude", "hns.module", "hns.network", "cni.install",
                 "cni.config", "crictl.install", "crictl.config"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """A Windows release mirror (local folder), the sha256 pins it needs, a shared download cache."""
    root = tmp_path_factory.mktemp("winmirror")
    pins = load_settings({"DOCKLESS_TARGET": "windows"}, cwd=root).pins
    versions = {k: str(v) for k, v in pins.versions.items()}
    return root / "mirror", windows_mirror(root / "mirror", versions), root / "cache"


class Rig:
    """One fake Windows machine (host state + its disk under ``root/fs``), set up repeatedly."""

    def __init__(self, root: Path, mirror: tuple[Path, dict[str, str], Path], state: HostState | None = None,
                 sections: dict[str, dict[str, Any]] | None = None) -> None:
        self.root = root
        self.mirror_dir, self.pins, self.cache = mirror
        self.host = FakeWindowsHost(state if state is not None else HostState(), fs_root=root / "fs")
        self.sections = sections or {}
        self.session: Any = None

    @property
    def state(self) -> HostState:
        return self.host.state

    def new_session(self, **kw: Any) -> Any:
        settings = windows_settings(self.root, mirror=self.mirror_dir, pins=self.pins,
                                    sections=copy.deepcopy(self.sections), **kw)
        self.session = windows_session(self.host, settings, cache=self.cache)
        return self.session

    def setup(self, enable_features: bool = False, **kw: Any) -> dict[str, str]:
        """Run setup; returns {step: status}. Failures raise invoke.Exit like the task does."""
        self.host.reset_log()
        results = run_setup(self.new_session(**kw), enable_features=enable_features)
        return {r.step: r.status for r in results}

    def fails(self, enable_features: bool = False) -> str:
        with pytest.raises(Exit) as info:
            self.setup(enable_features=enable_features)
        message = str(info.value.message)
        assert "\n" not in message, message
        for noise in ("CLIXML", "CategoryInfo", "FullyQualifiedErrorId", "At line:", "Traceback"):
            assert noise not in message, message
        return message

    def local(self, path: str) -> Path:
        p = PureWindowsPath(path)
        return Path(self.root, "fs", p.drive.rstrip(":"), *p.parts[1:])

    def disk(self) -> dict[str, str]:
        fs = self.root / "fs"
        return {str(p.relative_to(fs)): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
                for p in sorted(fs.rglob("*")) if p.is_file() and p.name != "dockless.lock"}


def actions(rig: Rig) -> list[str]:
    return rig.host.actions


def one_action(rig: Rig) -> str:
    assert len(rig.host.actions) == 1, rig.host.actions
    return rig.host.actions[0]


@pytest.fixture
def rig(tmp_path: Path, mirror: tuple[Path, dict[str, str], Path]) -> Rig:
    return Rig(tmp_path, mirror)


@pytest.fixture
def converged(rig: Rig) -> Rig:
    rig.setup()
    return rig


# -- the whole setup, twice ------------------------------------------------------------------------
@pytest.mark.parametrize("json_arrays", ["plain", "single", "wrapped"])
def test_full_setup_then_noop_setup_starts_one_powershell(rig: Rig, json_arrays: str) -> None:
    rig.state.json_arrays = json_arrays
    first = rig.setup()
    assert list(first) == WINDOWS_STEPS
    assert {s for s, st in first.items() if st == "changed"} == {
        "containerd.install", "containerd.config", "containerd.service", "defender.exclude",
        "hns.module", "hns.network", "cni.install", "cni.config", "crictl.install", "crictl.config"}
    assert rig.host.powershell_count == 5  # probe, register, start, exclusion, network
    state, disk = copy.deepcopy(rig.state), rig.disk()

    second = rig.setup()
    assert set(second.values()) == {"ok"}, second
    assert rig.host.powershell_count == 1 and rig.host.actions == []  # the batched probe, nothing else
    assert rig.state == state and rig.disk() == disk  # changed nothing


def test_the_one_probe_asks_every_step_that_needs_the_host(converged: Rig) -> None:
    converged.setup()
    (probe,) = converged.host.probe_scripts
    for key in ("host", "containerd.service", "defender.exclude", "hns.network"):
        assert f"$dl['{key}'] = & {{" in probe


def test_cni_conf_matches_the_hns_network_and_crictl_reads_its_config(tmp_path: Path, mirror: Any) -> None:
    rig = Rig(tmp_path, mirror, HostState(user_profile=r"C:\Users\dev"))
    rig.setup()
    net = rig.state.network("nat")
    assert net is not None
    conf = json.loads(rig.local(NAT_CONF).read_text(encoding="utf-8"))
    assert (conf["name"], conf["type"], conf["ipam"]["subnet"]) == (net.name, "nat", net.subnet)
    assert conf["ipam"]["routes"] == [{"dst": "0.0.0.0/0", "gw": net.gateway}]
    # crictl on Windows reads %USERPROFILE%\.crictl\crictl.yaml of the user running it
    crictl = rig.local(r"C:\Users\dev\.crictl\crictl.yaml")
    text = crictl.read_text(encoding="utf-8")
    assert "runtime-endpoint: npipe://./pipe/containerd-containerd" in text
    assert "image-endpoint: npipe://./pipe/containerd-containerd" in text
    assert not rig.local(r"C:\Users\Administrator\.crictl\crictl.yaml").exists()
    config = rig.local(CONFIG).read_bytes()
    assert not config.startswith(b"\xef\xbb\xbf") and b"'C:\\Program Files\\containerd\\cni\\conf'" in config


@pytest.mark.parametrize("step", WINDOWS_STEPS)
def test_each_step_is_satisfied_on_a_converged_host(converged: Rig, step: str) -> None:
    session = converged.new_session()
    assert session.plan_step(step) == []


# -- preflight ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("state, expected", [
    (HostState(elevated=False), "dockless must run elevated"),
    (HostState(build=14393), "Windows build 14393 is too old"),
    (HostState(reboot_pending=True), "a reboot is pending: reboot, then run `invoke setup` again"),
])
def test_preflight_refuses_with_one_clear_line(tmp_path: Path, mirror: Any, state: HostState, expected: str) -> None:
    rig = Rig(tmp_path, mirror, state)
    message = rig.fails()
    assert message.startswith("preflight.check failed: ") and expected in message
    assert rig.host.powershell_count == 1 and rig.host.actions == []  # nothing changed


def test_missing_feature_says_enable_features(tmp_path: Path, mirror: Any) -> None:
    rig = Rig(tmp_path, mirror, HostState(features={"Containers": "Disabled", "Microsoft-Hyper-V": "Disabled"}))
    message = rig.fails()
    assert "Containers" in message and "invoke setup --enable-features" in message
    assert rig.host.actions == []


def test_enable_features_on_server_then_reboot_and_resume(tmp_path: Path, mirror: Any) -> None:
    rig = Rig(tmp_path, mirror, HostState(features={"Containers": "Disabled", "Microsoft-Hyper-V": "Disabled"}))
    message = rig.fails(enable_features=True)
    assert "reboot now, then run `invoke setup` again" in message
    assert one_action(rig) == "Install-WindowsFeature -Name 'Containers' | Out-Null\n"
    assert rig.state.features == {"Containers": "EnablePending", "Microsoft-Hyper-V": "Disabled"}
    # before the reboot: a clear line, nothing else runs
    assert "a reboot is pending" in rig.fails(enable_features=True)
    assert rig.host.actions == []
    rig.state.reboot()
    assert "changed" in rig.setup(enable_features=True).values()
    assert set(rig.setup().values()) == {"ok"} and rig.host.powershell_count == 1


def test_client_edition_enables_microsoft_hyper_v_by_its_client_name(tmp_path: Path, mirror: Any) -> None:
    rig = Rig(tmp_path, mirror, HostState(edition="client", build=22631,
                                          features={"Containers": "Enabled", "Microsoft-Hyper-V": "Disabled"}))
    assert "Microsoft-Hyper-V" in rig.fails()
    rig.fails(enable_features=True)
    script = one_action(rig)
    assert script == "Enable-WindowsOptionalFeature -Online -FeatureName 'Microsoft-Hyper-V' -All -NoRestart | Out-Null\n"
    assert rig.state.features["Microsoft-Hyper-V"] == "EnablePending"


def test_features_waiting_for_a_reboot_say_reboot(tmp_path: Path, mirror: Any) -> None:
    rig = Rig(tmp_path, mirror, HostState(features={"Containers": "EnablePending"}))
    message = rig.fails()
    assert "wait for a reboot" in message and "--enable-features" not in message


def test_a_failing_probe_is_one_line(rig: Rig) -> None:
    rig.host.fail("ConvertTo-Json", "Get-CimInstance : Access denied ")
    message = rig.fails()
    assert message.startswith("probing the Windows host failed: Get-CimInstance : Access denied")


# -- containerd service ------------------------------------------------------------------------------
def test_register_service_with_flags_then_start_and_wait_for_the_pipe(rig: Rig) -> None:
    rig.setup()
    register, start = [s for s in rig.host.actions if "containerd" in s and "MpPreference" not in s]
    assert register.startswith(f"& '{EXE}' --register-service '--config' '{CONFIG}' '--log-file' '{LOG}' '--log-level' 'info'\n")
    assert "$LASTEXITCODE" in register
    assert start.startswith("Start-Service containerd\n") and "Test-Path '\\\\.\\pipe\\containerd-containerd'" in start
    assert rig.state.service is not None
    assert rig.state.service.path_name == containerd_service_path(EXE, SERVICE_ARGS)
    assert rig.state.service.state == "Running" and rig.state.pipe_open


@pytest.mark.parametrize("path_name", [
    containerd_service_path(EXE, ["--config", CONFIG, "--log-file", LOG, "--log-level", "debug"]),  # flag value
    containerd_service_path(r"C:\containerd\bin\containerd.exe", SERVICE_ARGS),  # binary path
    containerd_service_path(EXE, ["--config", CONFIG, "--log-level", "info"]),  # a flag missing
    containerd_service_path(EXE, SERVICE_ARGS + ["--address", r"\\.\pipe\other"]),  # an extra flag
    containerd_service_path(EXE, ["--config", CONFIG + ".bak", "--log-file", LOG, "--log-level", "info"]),
])
def test_reregister_when_binary_path_or_flags_differ(converged: Rig, path_name: str) -> None:
    assert converged.state.service is not None
    converged.state.service.path_name = path_name
    assert converged.setup()["containerd.service"] == "changed"
    rereg, start = converged.host.actions
    assert rereg.startswith("Stop-Service containerd -ErrorAction SilentlyContinue\n"
                            f"& '{EXE}' --unregister-service\n& '{EXE}' --register-service '--config' '{CONFIG}'")
    assert start.startswith("Start-Service containerd\n")
    assert converged.state.service.path_name == containerd_service_path(EXE, SERVICE_ARGS)
    assert converged.setup()["containerd.service"] == "ok" and converged.host.powershell_count == 1


def test_registered_path_is_compared_case_insensitively(converged: Rig) -> None:
    assert converged.state.service is not None
    converged.state.service.path_name = converged.state.service.path_name.replace("Program Files", "PROGRAM FILES")
    assert converged.setup()["containerd.service"] == "ok"


def test_stopped_service_is_started(converged: Rig) -> None:
    converged.state.reboot()  # brings the service back; stop it to look like a crash
    assert converged.state.service is not None
    converged.state.service.state = "Stopped"
    converged.state.processes, converged.state.pipe_open = [], False
    converged.setup()
    assert [s.split("\n")[0] for s in converged.host.actions] == ["Start-Service containerd", "Import-Module "
                                                                  "'C:\\ProgramData\\dockless\\hns.psm1' -DisableNameChecking"]


def test_config_change_restarts_the_running_service(converged: Rig) -> None:
    converged.sections = {"containerd": {"sandbox_image": "registry.k8s.io/pause:3.10"}}
    status = converged.setup()
    assert status["containerd.config"] == "changed" and status["containerd.service"] == "changed"
    assert one_action(converged).startswith("Restart-Service containerd\n")


@pytest.mark.parametrize("json_arrays", ["plain", "single", "wrapped"])
@pytest.mark.parametrize("service_state", [None, "Stopped"])
def test_a_containerd_that_is_not_the_service_is_one_clear_failure(rig: Rig, json_arrays: str,
                                                                     service_state: str | None) -> None:
    rig.state.json_arrays = json_arrays
    if service_state:
        rig.state.install_service(EXE, SERVICE_ARGS, state=service_state)
    rig.state.processes = [Process(777, r"C:\tools\containerd.exe")]
    rig.state.pipe_open = True
    message = rig.fails()
    assert message.startswith("containerd.service failed: a containerd that is not the service")
    assert r"pid 777 C:\tools\containerd.exe" in message and "stop it" in message
    assert rig.host.actions == []


def test_failing_start_is_one_line_with_the_error_message(rig: Rig) -> None:
    rig.host.fail("Start-Service", "Start-Service : Service 'containerd (containerd)' cannot be started due to the "
                                   "following error: Cannot start service containerd on computer '.'.")
    message = rig.fails()
    assert message == ("containerd.service failed: start containerd and wait for its pipe failed (exit 1): "
                       "Start-Service : Service 'containerd (containerd)' cannot be started due to the following "
                       "error: Cannot start service containerd on computer '.'.")


def test_failing_register_reports_the_native_error_too(rig: Rig) -> None:
    rig.host.fail("--register-service", "Access is denied.")
    assert "register the containerd service failed (exit 1): Access is denied." in rig.fails()


def test_service_that_exists_despite_the_probe_is_a_clear_failure(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    # the probe said "no service"; registering finds one (registered in between)
    real = FakeWindowsHost._probe_service

    def racing(host: FakeWindowsHost, body: str) -> Any:
        value = real(host, body)
        host.state.install_service(r"C:\other\containerd.exe", [], state="Stopped")
        return value

    monkeypatch.setattr(FakeWindowsHost, "_probe_service", racing)
    message = rig.fails()
    assert message.endswith("containerd --register-service failed with exit code 1 "
                            "(containerd: The specified service already exists.)")


# -- Defender (C05) -------------------------------------------------------------------------------------
def test_c05_defender_exclusion_is_exactly_the_installed_binary_and_added_once(rig: Rig) -> None:
    rig.setup()
    added = [s for s in rig.host.actions if "MpPreference" in s]
    assert added == [f"Add-MpPreference -ExclusionProcess '{EXE}'\n"]
    assert rig.state.exclusions == [EXE]
    rig.setup()
    assert rig.state.exclusions == [EXE] and rig.host.actions == []
    everything = "\n".join(rig.host.scripts)
    assert "DisableRealtimeMonitoring" not in everything and "Set-MpPreference" not in everything


def test_c05_existing_exclusion_in_other_case_is_kept(tmp_path: Path, mirror: Any) -> None:
    rig = Rig(tmp_path, mirror, HostState(exclusions=[r"c:\program files\containerd\bin\CONTAINERD.EXE", r"C:\x.exe"]))
    assert rig.setup()["defender.exclude"] == "ok"
    assert not any("MpPreference" in s for s in rig.host.actions)


def test_c05_missing_exclusion_is_added_back(converged: Rig) -> None:
    converged.state.exclusions = [r"C:\other.exe"]
    assert converged.setup()["defender.exclude"] == "changed"
    assert one_action(converged) == f"Add-MpPreference -ExclusionProcess '{EXE}'\n"


@pytest.mark.parametrize("defender, why", [("absent", "not available"), ("off", "cannot be read")])
def test_c05_defender_absent_or_blocked_is_a_warning(tmp_path: Path, mirror: Any, defender: str, why: str) -> None:
    rig = Rig(tmp_path, mirror, HostState(defender=defender))
    status = rig.setup()
    assert status["defender.exclude"] == "warning" and "failed" not in status.values()
    assert not any("MpPreference" in s for s in rig.host.actions)
    assert any(why in w and EXE in w for w in rig.session.warnings)
    assert set(rig.setup().values()) <= {"ok", "warning"} and rig.host.powershell_count == 1


def test_c05_exclusions_hidden_by_policy_are_added_once(tmp_path: Path, mirror: Any) -> None:
    rig = Rig(tmp_path, mirror, HostState(defender="hidden"))
    rig.setup()
    assert [s for s in rig.host.actions if "MpPreference" in s] == [f"Add-MpPreference -ExclusionProcess '{EXE}'\n"]
    assert rig.setup()["defender.exclude"] == "ok" and rig.host.powershell_count == 1


def test_c05_defender_can_be_switched_off(tmp_path: Path, mirror: Any) -> None:
    rig = Rig(tmp_path, mirror, sections={"defender": {"enabled": False}})
    rig.setup()
    assert not any("MpPreference" in s for s in rig.host.scripts[1:]) and rig.state.exclusions == []


def test_c05_failing_add_is_one_line(rig: Rig) -> None:
    rig.host.fail("Add-MpPreference", "Add-MpPreference : Operation failed with the following error: 0x80070005")
    assert rig.fails().endswith("failed (exit 1): Add-MpPreference : Operation failed with the following error: 0x80070005")


# -- HNS network and the CNI conf (C08, C09) ---------------------------------------------------------
def test_missing_network_is_created_with_the_pinned_module(rig: Rig) -> None:
    rig.setup()
    (script,) = [s for s in rig.host.actions if "HnsNetwork" in s]
    assert script == ("Import-Module 'C:\\ProgramData\\dockless\\hns.psm1' -DisableNameChecking\n"
                      "New-HnsNetwork -Type NAT -Name 'nat' -AddressPrefix '10.0.0.0/16' -Gateway '10.0.0.1' | Out-Null\n")
    assert rig.local(r"C:\ProgramData\dockless\hns.psm1").is_file()


def test_c08_default_subnet_overlapping_the_host_nic_is_refused_with_a_free_range(tmp_path: Path, mirror: Any) -> None:
    state = HostState(interfaces=[Interface("10.0.0.4", 24, "Ethernet"), Interface("127.0.0.1", 8, "Loopback Pseudo-Interface 1")])
    rig = Rig(tmp_path, mirror, state)
    message = rig.fails()
    assert message.startswith("hns.network failed: hns.subnet 10.0.0.0/16 overlaps host interface 10.0.0.4/24")
    assert 'hns.subnet = "172.16.0.0/16"' in message and 'hns.gateway = "172.16.0.1"' in message
    assert not any("HnsNetwork" in s for s in rig.host.actions) and rig.state.networks == []
    rig.sections = {"hns": {"subnet": "172.16.0.0/16", "gateway": "172.16.0.1"}}
    rig.setup()
    assert json.loads(rig.local(NAT_CONF).read_text())["ipam"]["subnet"] == "172.16.0.0/16"


@pytest.mark.parametrize("json_arrays", ["plain", "single", "wrapped"])
def test_c08_existing_nat_network_is_reused_and_written_into_the_conf(tmp_path: Path, mirror: Any, json_arrays: str) -> None:
    state = HostState(json_arrays=json_arrays)
    state.add_network("nat", "172.20.0.0/16", "172.20.0.1")
    rig = Rig(tmp_path, mirror, state)
    rig.setup()
    assert not any("New-HnsNetwork" in s for s in rig.host.actions)
    conf = json.loads(rig.local(NAT_CONF).read_text())
    assert conf["ipam"]["subnet"] == "172.20.0.0/16" and conf["ipam"]["routes"][0]["gw"] == "172.20.0.1"
    assert set(rig.setup().values()) == {"ok"} and rig.host.powershell_count == 1


@pytest.mark.parametrize("subnet, gateway, expected", [
    ("172.22.16.0/16", "172.22.16.1", "did you mean 172.22.0.0/16?"),
    ("10.0.0.0/16", "10.1.0.1", "hns.gateway 10.1.0.1 is outside hns.subnet 10.0.0.0/16"),
])
def test_c08_bad_subnet_settings_are_refused(tmp_path: Path, mirror: Any, subnet: str, gateway: str, expected: str) -> None:
    rig = Rig(tmp_path, mirror, sections={"hns": {"subnet": subnet, "gateway": gateway}})
    message = rig.fails()
    assert message.startswith("hns.network failed:") and expected in message
    assert rig.state.networks == []


def test_c09_network_gone_after_reboot_is_recreated_exactly(converged: Rig) -> None:
    conf = converged.local(NAT_CONF).read_bytes()
    assert json.loads(conf)["ipam"] == {"subnet": "10.0.0.0/16", "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]}
    converged.state.reboot()
    assert converged.state.networks == []
    status = converged.setup()
    assert status["hns.network"] == "changed" and status["cni.config"] == "ok"
    assert one_action(converged).endswith(
        "New-HnsNetwork -Type NAT -Name 'nat' -AddressPrefix '10.0.0.0/16' -Gateway '10.0.0.1' | Out-Null\n")
    assert converged.local(NAT_CONF).read_bytes() == conf
    assert set(converged.setup().values()) == {"ok"} and converged.host.powershell_count == 1


def test_c09_a_reused_network_that_is_gone_is_recreated_as_the_conf_names_it(tmp_path: Path, mirror: Any) -> None:
    state = HostState()
    state.add_network("nat", "172.20.0.0/16", "172.20.0.1")
    rig = Rig(tmp_path, mirror, state)
    rig.setup()
    conf = rig.local(NAT_CONF).read_bytes()
    rig.state.reboot()
    rig.setup()
    assert one_action(rig).endswith("-Name 'nat' -AddressPrefix '172.20.0.0/16' -Gateway '172.20.0.1' | Out-Null\n")
    assert rig.local(NAT_CONF).read_bytes() == conf  # pods keep their subnet


def test_failing_network_creation_is_one_line(tmp_path: Path, mirror: Any) -> None:
    state = HostState()
    state.add_network("ContainerNAT", "172.30.0.0/16", "172.30.0.1")  # WinNAT: one NAT network per host
    rig = Rig(tmp_path, mirror, state)
    message = rig.fails()
    assert message.startswith("hns.network failed: create HNS network nat 10.0.0.0/16 via 10.0.0.1 failed (exit 1): "
                              "HNS failed with error : The object already exists.")


# -- the fake itself ---------------------------------------------------------------------------------
def test_fake_host_fails_loudly_on_unknown_commands() -> None:
    host = FakeWindowsHost()
    with pytest.raises(UnknownCommand):
        host.run("cmd /c dir")
    with pytest.raises(UnknownCommand):
        host.run(powershell.command("Set-MpPreference -DisableRealtimeMonitoring $true\n"))
    with pytest.raises(UnknownCommand):
        host.run(powershell.command(powershell.probe_script({"mystery.step": "42"})))


def test_fake_host_answers_probes_in_powershell_51_json(tmp_path: Path) -> None:
    from plugins.containerd_service import SERVICE_PROBE
    from plugins.defender import PROBE

    state = HostState(exclusions=["C:\\it's.exe"], json_arrays="single")
    state.install_service(EXE, SERVICE_ARGS)
    host = FakeWindowsHost(state)
    result = host.run(powershell.command(powershell.probe_script({"containerd.service": SERVICE_PROBE,
                                                                  "defender.exclude": PROBE})), hide=True, warn=True)
    assert "\\u0027" in result.stdout and "'" not in result.stdout  # 5.1 escapes ' < > &
    data = powershell.parse_probe_output(result.stdout)
    assert data["defender.exclude"] == {"available": True, "exclusions": "C:\\it's.exe"}  # one element: bare
    assert data["containerd.service"]["processes"] == {"Id": 4100, "Path": EXE}
    assert data["containerd.service"]["service"]["path"] == containerd_service_path(EXE, SERVICE_ARGS)
    assert host.powershell_count == 1 and host.actions == []
