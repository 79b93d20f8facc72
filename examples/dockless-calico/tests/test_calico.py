"""dockless-calico tested the way a plugin author tests: the ``dockless.testing`` fixtures
(``dockless_plan``, ``windows_host``, ``release_mirror``) with entry points off and this plugin
passed in explicitly, so what is installed on the machine never leaks in."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from dockless.settings import SettingsError
from dockless_calico import plugin

CALICO = {"cni": "calico"}


def tasks(entries: list[Any]) -> list[str]:
    return [e.task for e in entries]


def entry(entries: list[Any], task: str) -> Any:
    return next(e for e in entries if e.task == task)


def conf_of(entries: list[Any]) -> dict[str, Any]:
    files = [f for f in entry(entries, "cni.config").files if f["path"].endswith(plugin.CONF)]
    assert len(files) == 1
    return json.loads(files[0]["content"])


# -- the plan ------------------------------------------------------------------------------------
def test_selected_calico_replaces_nat_and_its_network(dockless_plan: Any) -> None:
    entries = dockless_plan("windows", CALICO, [plugin])
    names = tasks(entries)
    assert ["cni.install", "cni.network", "cni.config"] == [t for t in names if t.startswith("cni.")]
    assert not [t for t in names if t.startswith("hns.")]  # no nat network, no hns.psm1 of its own
    assert names.index("containerd.config") < names.index("cni.install")
    text = json.dumps([e.as_json() for e in entries])
    assert "0-containerd-nat.conf" not in text and "nat.exe" not in text
    install = entry(entries, "cni.install").changes
    assert any("projectcalico/calico/releases/download/v3.30.4/calico-windows-v3.30.4.zip" in c for c in install)
    assert any("CalicoWindows/cni/calico.exe, CalicoWindows/cni/calico-ipam.exe" in c for c in install)


def test_conf_is_calicos_windows_conf(dockless_plan: Any) -> None:
    conf = conf_of(dockless_plan("windows", CALICO, [plugin]))
    assert conf["type"] == "calico" and conf["name"] == "Calico" and conf["windows_use_single_network"] is True
    assert (conf["mode"], conf["vxlan_vni"], conf["vxlan_mac_prefix"]) == ("vxlan", 4096, "0E-2A")
    assert conf["ipam"] == {"type": "calico-ipam", "subnet": "usePodCidr"}
    assert conf["nodename_file"] == r"C:\ProgramData\dockless\calico\nodename"
    nat, route = conf["policies"]
    assert nat["Value"] == {"Type": "OutBoundNAT", "ExceptionList": ["10.96.0.0/12"]}
    assert route["Value"]["Type"] == "SDNROUTE"  # HNS v2 (containerd) spelling
    assert conf["DNS"]["Nameservers"] == ["10.96.0.10"]


def test_network_is_the_external_overlay(dockless_plan: Any) -> None:
    script = entry(dockless_plan("windows", CALICO, [plugin]), "cni.network").commands[0]
    assert "New-HnsNetwork -Type Overlay -Name 'External'" in script
    assert "@(@{ Type = 'VSID'; VSID = 9999 })" in script
    assert "-LocalPort 4789" in script and "-Type NAT" not in script


def test_windows_bgp_uses_an_l2bridge_and_no_vxlan(dockless_plan: Any) -> None:
    entries = dockless_plan("windows", {"cni": "calico", "calico": {"mode": "windows-bgp"}}, [plugin])
    script = entry(entries, "cni.network").commands[0]
    assert "-Type L2Bridge" in script and "VSID" not in script and "4789" not in script
    assert conf_of(entries)["mode"] == ""


def test_installing_alone_changes_nothing(dockless_plan: Any) -> None:
    without = [e.as_json() for e in dockless_plan("windows")]
    installed = [e.as_json() for e in dockless_plan("windows", None, [plugin])]
    assert installed == without


def test_calico_is_windows_only(dockless_plan: Any) -> None:
    linux = dockless_plan("linux", CALICO, [plugin])  # one dockless.toml for both kinds of host
    assert "cni.network" not in tasks(linux)
    assert any("10-dockless-bridge.conflist" in f["path"] for f in entry(linux, "cni.config").files)


# -- settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("section", "fragment"), [
    ({"vni": 4095}, "[calico] vni = 4095: Windows needs a VXLAN VNI of at least 4096"),
    ({"ipam": "host-local"}, "Calico VXLAN needs ipam = \"calico-ipam\""),
    ({"service_cidr": "10.96.0.1/12"}, "[calico] service_cidr = '10.96.0.1/12'"),
    ({"dns_servers": ["dns.local"]}, "[calico] dns_servers: 'dns.local' is not an IP address"),
    ({"mac_prefix": "0E2A"}, "[calico] mac_prefix = '0E2A'"),
    ({"version": "latest"}, "is not a full release version"),
    ({"datastore": "etcdv3"}, "needs etcd_endpoints"),
])
def test_settings_problems_stop_the_plan(dockless_plan: Any, section: dict[str, Any], fragment: str) -> None:
    overrides = {"cni": "calico", "calico": section}
    found = dockless_plan.problems("windows", overrides, [plugin])
    assert len(found) == 1 and found[0].startswith("dockless_calico.plugin: ") and fragment in found[0]
    with pytest.raises(SettingsError, match="dockless_calico.plugin: "):
        dockless_plan("windows", overrides, [plugin])


def test_settings_are_not_checked_when_calico_is_not_selected(dockless_plan: Any) -> None:
    assert dockless_plan.problems("windows", {"calico": {}}, [plugin]) == []


def test_choices_and_unknown_keys_are_refused_by_the_host(dockless_plan: Any) -> None:
    with pytest.raises(SettingsError, match=r"\[calico\] mode = 'bgp' must be one of vxlan, windows-bgp"):
        dockless_plan("windows", {"cni": "calico", "calico": {"mode": "bgp"}}, [plugin])
    with pytest.raises(SettingsError, match=r"'vxlan_vni' is not a setting of calico"):
        dockless_plan("windows", {"cni": "calico", "calico": {"vxlan_vni": 4096}}, [plugin])


def test_every_setting_has_help() -> None:
    assert all(s.help for s in plugin.SETTINGS.values())


def test_scripts_are_windows_powershell_51(dockless_plan: Any) -> None:
    pytest.importorskip("tree_sitter_powershell")
    from dockless.testing.powershell import assert_windows_powershell

    dockless_plan("windows", CALICO, [plugin])
    for script in (plugin.create_script(dockless_plan.session, "vxlan"),
                   plugin.create_script(dockless_plan.session, "windows-bgp"),
                   plugin.remove_script("nat"), plugin.NETWORK_PROBE):
        assert_windows_powershell(script)


# -- a whole swap on the fake Windows host ---------------------------------------------------------------
def calico_zip(version: str = plugin.DEFAULT_VERSION) -> bytes:
    """The layout of the real calico-windows zip (a ``CalicoWindows/`` tree), stand-in binaries."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ("cni/calico.exe", "cni/calico-ipam.exe", "calico-node.exe"):
            zf.writestr(f"CalicoWindows/{name}", b"MZ stand-in " + name.encode())
        zf.writestr("CalicoWindows/libs/hns/hns.psm1", b"function New-HnsNetwork { }\r\n")
        zf.writestr("CalicoWindows/config.ps1", b"# stand-in\r\n")
    return buf.getvalue()


def list_networks(host: Any, body: str) -> Any:
    assert "Get-HnsNetwork" in body
    return {"networks": [{"Name": n.name, "Type": n.type} for n in host.state.networks]}


def test_swap_nat_to_calico_and_back(windows_host: Any, release_mirror: Any, tmp_path: Path) -> None:
    from dockless.testing.fixtures import make_registry
    from dockless.testing.windows import run_setup, step_ids, windows_session, windows_settings

    pins = release_mirror.windows()
    v = plugin.DEFAULT_VERSION
    release_mirror.add("projectcalico/calico", f"v{v}", f"calico-windows-v{v}.zip", calico_zip())
    windows_host.probe_handlers["cni.network"] = list_networks
    registry = make_registry([plugin])
    fs = tmp_path / "fs" / "C"
    conf_dir = fs / "Program Files" / "containerd" / "cni" / "conf"

    def setup(cni: str | None, **calico: Any) -> list[Any]:
        settings = windows_settings(tmp_path, mirror=release_mirror.url, pins=pins, sections={"calico": calico})
        settings.cni = cni
        return run_setup(windows_session(windows_host, settings, registry, cache=tmp_path / "cache"))

    setup(None)  # the built-in nat first
    assert sorted(p.name for p in conf_dir.iterdir()) == ["0-containerd-nat.conf"]
    assert [n.name for n in windows_host.state.networks] == ["nat"]

    windows_host.reset_log()
    results = setup("calico", mode="windows-bgp")
    assert "cni.network" in step_ids(results, "changed")
    assert sorted(p.name for p in conf_dir.iterdir()) == ["10-calico.conf"]  # exactly one active conf
    assert [(n.name, n.type) for n in windows_host.state.networks] == [("External", "L2Bridge")]  # nat is gone
    assert (fs / "Program Files" / "containerd" / "cni" / "bin" / "calico.exe").is_file()
    assert (fs / "ProgramData" / "dockless" / "calico" / "hns.psm1").is_file()
    manifest = json.loads((fs / "ProgramData" / "dockless" / "manifest.json").read_text())
    assert {(r["kind"], r["value"]) for r in manifest["records"] if r["kind"] == "hns-network"} == {("hns-network", "External")}

    windows_host.reset_log()
    again = setup("calico", mode="windows-bgp")
    assert step_ids(again, "changed") == [] and windows_host.actions == []  # idempotent

    setup(None)  # and back: nat conf and network again, the Calico conf gone
    assert sorted(p.name for p in conf_dir.iterdir()) == ["0-containerd-nat.conf"]
    assert "nat" in [n.name for n in windows_host.state.networks]


def test_vxlan_keeps_an_existing_overlay_and_refuses_a_wrong_one(windows_host: Any, release_mirror: Any, tmp_path: Path) -> None:
    from dockless.testing.fixtures import make_registry
    from dockless.testing.windows import windows_session, windows_settings

    windows_host.probe_handlers["cni.network"] = list_networks
    settings = windows_settings(tmp_path, mirror=release_mirror.url)
    settings.cni = "calico"
    session = windows_session(windows_host, settings, make_registry([plugin]), cache=tmp_path / "cache")
    windows_host.state.add_network("External", "192.168.255.0/30", "192.168.255.1", "Overlay")
    assert plugin.plan_network(session) == []
    windows_host.state.remove_network("External")
    windows_host.state.add_network("External", "192.168.255.0/30", "192.168.255.1", "L2Bridge")
    session = windows_session(windows_host, settings, make_registry([plugin]), cache=tmp_path / "cache")
    from dockless.actions import StepFailed

    with pytest.raises(StepFailed, match="HNS network External is L2Bridge, Calico vxlan needs Overlay"):
        plugin.plan_network(session)
