"""The Windows CNI nat conf (field case C07)."""
from __future__ import annotations

import json

import pytest

from dockless.cninat import (
    SUPPORTED_CNI_VERSIONS,
    CniConfError,
    conf_json,
    nat_conf,
    supported_cni_versions,
    validate_nat_conf,
)
from dockless.netcheck import NetworkError

BASE = {"name": "nat", "subnet": "10.0.0.0/16", "gateway": "10.0.0.1"}

# The conf from the seed article / many blog posts: Linux default cniVersion, a "gateway"
# route key, no capabilities, and an HNS v1 outbound-NAT policy.
SEED_CONF = {
    "cniVersion": "0.3.1",
    "name": "nat",
    "type": "nat",
    "master": "Ethernet",
    "ipam": {"subnet": "10.0.0.0/16", "routes": [{"gateway": "10.0.0.1"}]},
    "AdditionalArgs": [
        {"Name": "EndpointPolicy", "Value": {"Type": "OutBoundNAT", "ExceptionList": ["10.0.0.0/8"]}}
    ],
}


def test_supported_versions_per_plugin_release() -> None:
    assert SUPPORTED_CNI_VERSIONS["0.3.1"] == ("0.2.0", "0.3.0", "0.4.0", "1.0.0")
    assert SUPPORTED_CNI_VERSIONS["0.3.0"] == ("0.2.0", "0.3.0")
    assert "0.3.1" not in {v for versions in SUPPORTED_CNI_VERSIONS.values() for v in versions}
    assert supported_cni_versions("v0.3.1") == supported_cni_versions("0.3.1")


def test_c07_cni_version_031_refused_for_plugin_031_naming_the_supported_list() -> None:
    with pytest.raises(CniConfError) as err:
        nat_conf(**BASE, plugin_version="0.3.1", cni_version="0.3.1")
    msg = str(err.value)
    assert '"0.3.1"' in msg and "v0.3.1" in msg
    assert "0.2.0, 0.3.0, 0.4.0, 1.0.0" in msg
    assert "\n" not in msg


def test_c07_cni_version_100_refused_for_plugin_030() -> None:
    with pytest.raises(CniConfError) as err:
        nat_conf(**BASE, plugin_version="v0.3.0", cni_version="1.0.0")
    msg = str(err.value)
    assert '"1.0.0"' in msg and "v0.3.0" in msg
    assert msg.endswith("use one of 0.2.0, 0.3.0")


def test_c07_default_cni_version_is_the_newest_the_plugin_accepts() -> None:
    assert nat_conf(**BASE, plugin_version="0.3.1")["cniVersion"] == "1.0.0"
    assert nat_conf(**BASE, plugin_version="0.3.0")["cniVersion"] == "0.3.0"
    assert nat_conf(**BASE, plugin_version="0.3.1", cni_version="0.4.0")["cniVersion"] == "0.4.0"


def test_c07_routes_use_gw_never_gateway() -> None:
    conf = nat_conf(**BASE, plugin_version="0.3.1")
    assert conf["ipam"]["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]
    assert '"gateway"' not in conf_json(conf)


def test_c07_user_conf_problems_are_listed_with_the_source() -> None:
    problems = validate_nat_conf(SEED_CONF, "0.3.1", source="C:/cni/conf/0-containerd-nat.conf")
    assert all(p.startswith("C:/cni/conf/0-containerd-nat.conf: ") for p in problems)
    text = "\n".join(problems)
    assert 'cniVersion "0.3.1" is not accepted' in text
    assert "0.2.0, 0.3.0, 0.4.0, 1.0.0" in text
    assert 'ipam.routes[0] uses "gateway"' in text and '"gw"' in text
    assert "capabilities.portMappings" in text
    assert "capabilities.dns" in text
    assert "ExceptionList" in text
    assert len(problems) == 5


def test_c07_third_party_conflist_with_100_refused_for_plugin_030() -> None:
    plugin = nat_conf(**BASE, plugin_version="0.3.1")
    del plugin["cniVersion"], plugin["name"]
    conflist = {"cniVersion": "1.0.0", "name": "nat", "plugins": [plugin]}
    problems = validate_nat_conf(conflist, "0.3.0", source="plugin acme-cni")
    assert problems == [
        'plugin acme-cni: cniVersion "1.0.0" is not accepted by nat.exe from '
        "windows-container-networking v0.3.0; use one of 0.2.0, 0.3.0"
    ]


def test_own_conf_validates_clean_for_every_release() -> None:
    for release in SUPPORTED_CNI_VERSIONS:
        conf = nat_conf(**BASE, plugin_version=release, outbound_nat_exceptions=["10.0.0.0/8"])
        assert validate_nat_conf(conf, release, source="dockless") == []


def test_validate_flags_missing_pieces() -> None:
    problems = validate_nat_conf(
        {"name": "nat", "type": "nat", "ipam": {"subnet": "10.0.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]},
         "capabilities": {"portMappings": True, "dns": True}},
        "0.3.1", source="x",
    )
    assert any("cniVersion is missing" in p for p in problems)
    assert any('routes[0] has no "gw"' in p for p in problems)


def test_validate_checks_gw_inside_the_subnet_and_the_subnet_address() -> None:
    conf = nat_conf(**BASE, plugin_version="0.3.1")
    conf["ipam"]["routes"] = [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]
    assert any("routes[0].gw 10.1.0.1 is outside" in p for p in validate_nat_conf(conf, "0.3.1", source="x"))
    conf["ipam"]["subnet"] = "172.22.16.0/16"
    assert any("did you mean 172.22.0.0/16" in p for p in validate_nat_conf(conf, "0.3.1", source="x"))


def test_validate_wrong_type_and_not_an_object() -> None:
    conf = nat_conf(**BASE, plugin_version="0.3.1") | {"type": "sdnbridge"}
    assert any('type is "sdnbridge", expected "nat"' in p for p in validate_nat_conf(conf, "0.3.1", source="x"))
    assert validate_nat_conf([], "0.3.1", source="x") == ["x: the conf is not a JSON object"]  # type: ignore[arg-type]
    assert validate_nat_conf({"cniVersion": "1.0.0", "plugins": []}, "0.3.1", source="x") == [
        'x: no plugin with "type": "nat" in the conflist'
    ]


def test_unknown_plugin_release_raises() -> None:
    with pytest.raises(CniConfError, match="v0.3.1"):
        nat_conf(**BASE, plugin_version="latest")
    with pytest.raises(CniConfError):
        validate_nat_conf(SEED_CONF, "9.9.9", source="x")


def test_outbound_nat_exceptions_use_the_hcn_v2_policy_shape() -> None:
    conf = nat_conf(**BASE, plugin_version="0.3.1", outbound_nat_exceptions=["10.0.0.0/8", "192.168.1.10"])
    assert conf["AdditionalArgs"] == [
        {
            "Name": "EndpointPolicy",
            "Value": {"Type": "OutBoundNAT", "Settings": {"Exceptions": ["10.0.0.0/8", "192.168.1.10"]}},
        }
    ]
    assert "AdditionalArgs" not in nat_conf(**BASE, plugin_version="0.3.1")
    with pytest.raises(CniConfError, match="did you mean 10.0.0.0/8"):
        nat_conf(**BASE, plugin_version="0.3.1", outbound_nat_exceptions=["10.1.2.3/8"])
    with pytest.raises(CniConfError, match="not an IPv4 address or CIDR"):
        nat_conf(**BASE, plugin_version="0.3.1", outbound_nat_exceptions=["corp-net"])


def test_bad_network_pair_raises_network_error_naming_cni_nat() -> None:
    with pytest.raises(NetworkError, match=r"^cni_nat\.gateway 10\.1\.0\.1 is outside"):
        nat_conf(name="nat", subnet="10.0.0.0/16", gateway="10.1.0.1", plugin_version="0.3.1")
    with pytest.raises(CniConfError, match="network_name"):
        nat_conf(name=" ", subnet="10.0.0.0/16", gateway="10.0.0.1", plugin_version="0.3.1")


def test_capabilities_and_master() -> None:
    conf = nat_conf(**BASE, plugin_version="0.3.1", master="Ethernet")
    assert conf["capabilities"] == {"portMappings": True, "dns": True}
    assert conf["master"] == "Ethernet"
    assert "master" not in nat_conf(**BASE, plugin_version="0.3.1")


EXPECTED_JSON = """\
{
  "cniVersion": "1.0.0",
  "name": "nat",
  "type": "nat",
  "capabilities": {
    "portMappings": true,
    "dns": true
  },
  "ipam": {
    "subnet": "10.0.0.0/16",
    "routes": [
      {
        "dst": "0.0.0.0/0",
        "gw": "10.0.0.1"
      }
    ]
  }
}
"""


def test_json_output_is_stable() -> None:
    first = conf_json(nat_conf(**BASE, plugin_version="0.3.1"))
    second = conf_json(nat_conf(plugin_version="v0.3.1", gateway="10.0.0.1", subnet="10.0.0.0/16", name="nat"))
    assert first == second == EXPECTED_JSON
    assert json.loads(first)["ipam"]["routes"][0]["gw"] == "10.0.0.1"
    assert first.encode("utf-8").isascii()
