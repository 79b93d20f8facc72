"""NAT network validation (field case C08) and the PowerShell probe parsers."""
from __future__ import annotations

import ipaddress
import json

import pytest

from dockless.cninat import nat_conf
from dockless.netcheck import (
    HnsNetwork,
    NetworkError,
    hns_network_from_probe,
    host_prefixes_from_probe,
    suggest_free_subnet,
    validate_nat,
    validate_subnet,
)

# What Windows PowerShell 5.1 prints (4-space indent, two spaces after the colon, deep
# alignment of nested arrays) for the probes in dockless.netcheck's docstring.
NETIP_LIST = """\
[
    {
        "IPAddress":  "172.22.16.1",
        "PrefixLength":  20,
        "InterfaceAlias":  "vEthernet (nat)"
    },
    {
        "IPAddress":  "10.0.0.4",
        "PrefixLength":  24,
        "InterfaceAlias":  "Ethernet"
    },
    {
        "IPAddress":  "169.254.83.107",
        "PrefixLength":  16,
        "InterfaceAlias":  "Ethernet 2"
    },
    {
        "IPAddress":  "127.0.0.1",
        "PrefixLength":  8,
        "InterfaceAlias":  "Loopback Pseudo-Interface 1"
    }
]
"""

NETIP_SINGLE = """\
{
    "IPAddress":  "10.0.0.4",
    "PrefixLength":  24,
    "InterfaceAlias":  "Ethernet"
}
"""

HNS_NAT = """\
{
    "Name":  "nat",
    "Type":  "nat",
    "ID":  "5A1F0C52-6B2E-4C89-9F47-3D1E2B7A9C10",
    "Subnets":  [
                    {
                        "AddressPrefix":  "172.22.16.0/20",
                        "GatewayAddress":  "172.22.16.1",
                        "ID":  "D2E8B6B1-0F3A-4B5C-8E2D-6A7B9C0D1E2F",
                        "ObjectType":  5,
                        "Policies":  [

                                     ],
                        "State":  0
                    }
                ]
}
"""

HNS_NAT_SINGLE_SUBNET = """\
{
    "Name":  "nat",
    "Type":  "nat",
    "Id":  "5A1F0C52-6B2E-4C89-9F47-3D1E2B7A9C10",
    "Subnets":  {
                    "AddressPrefix":  "172.22.16.0/20",
                    "GatewayAddress":  "172.22.16.1"
                }
}
"""

HNS_TWO_NETWORKS = """\
[
    {
        "Name":  "Default Switch",
        "Type":  "ICS",
        "ID":  "C08CB7B8-9B3C-408E-8E30-5E16A3AEB444",
        "Subnets":  [
                        {
                            "AddressPrefix":  "172.29.176.0/20",
                            "GatewayAddress":  "172.29.176.1"
                        }
                    ]
    },
    {
        "Name":  "nat",
        "Type":  "nat",
        "ID":  "5A1F0C52-6B2E-4C89-9F47-3D1E2B7A9C10",
        "Subnets":  [
                        {
                            "AddressPrefix":  "172.22.16.0/20",
                            "GatewayAddress":  "172.22.16.1"
                        }
                    ]
    }
]
"""


# --- C08: the three inputs of the field case --------------------------------------------

def test_c08_subnet_not_its_network_address_is_refused_with_the_network_hint() -> None:
    with pytest.raises(NetworkError) as err:
        validate_nat("172.22.16.0/16", "172.22.16.1")
    msg = str(err.value)
    assert "hns.subnet" in msg
    assert "172.22.16.0/16" in msg and "not a network address" in msg
    assert "did you mean 172.22.0.0/16?" in msg
    assert err.value.setting == "hns.subnet"
    assert err.value.suggestion == "172.22.0.0/16"
    assert "\n" not in msg


def test_c08_the_hinted_network_then_validates() -> None:
    net, gw = validate_nat("172.22.0.0/16", "172.22.16.1")
    assert net == ipaddress.IPv4Network("172.22.0.0/16")
    assert gw == ipaddress.IPv4Address("172.22.16.1")


def test_c08_gateway_outside_the_subnet_is_refused() -> None:
    with pytest.raises(NetworkError) as err:
        validate_nat("10.0.0.0/16", "10.1.0.1")
    msg = str(err.value)
    assert "hns.gateway 10.1.0.1 is outside hns.subnet 10.0.0.0/16" in msg
    assert "10.0.0.1" in msg
    assert err.value.setting == "hns.gateway"


def test_c08_default_subnet_overlapping_the_host_nic_suggests_a_free_range() -> None:
    with pytest.raises(NetworkError) as err:
        validate_nat("10.0.0.0/16", "10.0.0.1", host_prefixes=["10.0.0.4/24"])
    msg = str(err.value)
    assert "overlaps host interface 10.0.0.4/24" in msg
    assert err.value.setting == "hns.subnet"
    free = err.value.suggestion
    assert free is not None and free in msg
    # the suggestion itself validates against the same host, with its first address as gateway
    gateway = str(ipaddress.IPv4Network(free).network_address + 1)
    assert gateway in msg
    net, gw = validate_nat(free, gateway, host_prefixes=["10.0.0.4/24"])
    assert net.prefixlen == 16 and not net.overlaps(ipaddress.IPv4Network("10.0.0.0/24"))


def test_c08_overlap_found_from_the_real_probe_output() -> None:
    prefixes = host_prefixes_from_probe(json.loads(NETIP_LIST))
    with pytest.raises(NetworkError, match="overlaps host interface 10.0.0.4/24"):
        validate_nat("10.0.0.0/16", "10.0.0.1", host_prefixes=prefixes)


def test_c08_existing_nat_network_is_reused_and_written_into_the_conf() -> None:
    prefixes = host_prefixes_from_probe(json.loads(NETIP_LIST))
    existing = hns_network_from_probe(json.loads(HNS_NAT))
    assert existing is not None
    net, gw = existing.validate(host_prefixes=prefixes)
    conf = nat_conf(name=existing.name, subnet=str(net), gateway=str(gw), plugin_version="0.3.1")
    assert conf["name"] == "nat"
    assert conf["ipam"]["subnet"] == "172.22.16.0/20"
    assert conf["ipam"]["routes"] == [{"dst": "0.0.0.0/0", "gw": "172.22.16.1"}]


@pytest.mark.parametrize(
    ("subnet", "gateway", "setting", "fragment"),
    [
        ("10.0.0.0", "10.0.0.1", "hns.subnet", "no prefix length"),
        ("fd00::/64", "fd00::1", "hns.subnet", "IPv6"),
        ("10.0.0.0/255.255.0.0", "10.0.0.1", "hns.subnet", '"10.0.0.0/16"'),
        ("10.0.0.0/31", "10.0.0.1", "hns.subnet", "no addresses for containers"),
        ("nat", "10.0.0.1", "hns.subnet", "CIDR"),
        ("10.0.0.0/16", "10.0.0.0", "hns.gateway", "network address"),
        ("10.0.0.0/16", "10.0.255.255", "hns.gateway", "broadcast address"),
        ("10.0.0.0/16", "10.0.0.1/16", "hns.gateway", "not an IPv4 address"),
    ],
)
def test_c08_every_kind_of_bad_pair_names_the_setting(
    subnet: str, gateway: str, setting: str, fragment: str
) -> None:
    with pytest.raises(NetworkError) as err:
        validate_nat(subnet, gateway)
    assert err.value.setting == setting
    assert str(err.value).startswith(setting)
    assert fragment in str(err.value)


def test_setting_prefix_is_used_in_messages() -> None:
    with pytest.raises(NetworkError, match=r"^cni_nat\.gateway "):
        validate_nat("10.0.0.0/16", "10.1.0.1", setting="cni_nat")
    assert validate_subnet("10.0.0.0/16") == ipaddress.IPv4Network("10.0.0.0/16")


def test_network_error_is_a_value_error() -> None:
    assert issubclass(NetworkError, ValueError)


# --- suggest_free_subnet ------------------------------------------------------------------

def test_suggest_free_subnet_prefers_172_16_and_skips_taken_ranges() -> None:
    assert suggest_free_subnet([]) == "172.16.0.0/16"
    assert suggest_free_subnet(["172.16.5.9/20", "172.17.0.0/16"]) == "172.18.0.0/16"
    assert suggest_free_subnet(["172.16.0.0/12"]) == "10.0.0.0/16"
    assert suggest_free_subnet(["172.16.0.0/12", "10.0.0.0/8"]) == "192.168.0.0/16"
    assert suggest_free_subnet(["172.16.0.0/12", "10.0.0.0/8", "192.168.0.0/24"], 24) == "192.168.1.0/24"
    assert suggest_free_subnet(["fe80::1/64"], 24) == "172.16.0.0/24"


def test_suggest_free_subnet_gives_up_with_a_network_error() -> None:
    with pytest.raises(NetworkError):
        suggest_free_subnet(["172.16.0.0/12", "10.0.0.0/8", "192.168.0.0/16"])
    with pytest.raises(NetworkError):
        suggest_free_subnet([], 31)


# --- Get-NetIPAddress probe ---------------------------------------------------------------

def test_host_prefixes_from_the_list_form_skip_loopback_apipa_and_the_nat_vnic() -> None:
    assert host_prefixes_from_probe(json.loads(NETIP_LIST)) == ["10.0.0.4/24"]


def test_host_prefixes_from_the_single_object_form() -> None:
    assert host_prefixes_from_probe(json.loads(NETIP_SINGLE)) == ["10.0.0.4/24"]


def test_host_prefixes_accept_raw_text_empty_output_and_the_value_wrapper() -> None:
    assert host_prefixes_from_probe(NETIP_SINGLE) == ["10.0.0.4/24"]
    assert host_prefixes_from_probe("\ufeff" + NETIP_LIST) == ["10.0.0.4/24"]
    assert host_prefixes_from_probe("") == []
    assert host_prefixes_from_probe(None) == []
    wrapped = {"value": json.loads(NETIP_LIST), "Count": 4}
    assert host_prefixes_from_probe(wrapped) == ["10.0.0.4/24"]


def test_host_prefixes_keep_the_nat_vnic_when_asked() -> None:
    prefixes = host_prefixes_from_probe(json.loads(NETIP_LIST), exclude_aliases=())
    assert prefixes == ["172.22.16.1/20", "10.0.0.4/24"]


def test_host_prefixes_refuse_a_failed_probe() -> None:
    with pytest.raises(ValueError, match="Access is denied"):
        host_prefixes_from_probe({"error": "Access is denied"})


# --- Get-HnsNetwork probe -----------------------------------------------------------------

def test_hns_network_from_the_single_object_form() -> None:
    net = hns_network_from_probe(json.loads(HNS_NAT))
    assert net == HnsNetwork(
        name="nat",
        type="nat",
        id="5A1F0C52-6B2E-4C89-9F47-3D1E2B7A9C10",
        subnet="172.22.16.0/20",
        gateway="172.22.16.1",
    )


def test_hns_network_with_subnets_as_a_single_object_and_id_spelled_id() -> None:
    net = hns_network_from_probe(json.loads(HNS_NAT_SINGLE_SUBNET))
    assert net is not None
    assert (net.id, net.subnet, net.gateway) == (
        "5A1F0C52-6B2E-4C89-9F47-3D1E2B7A9C10", "172.22.16.0/20", "172.22.16.1",
    )


def test_hns_network_from_the_list_form_picks_the_named_network() -> None:
    networks = json.loads(HNS_TWO_NETWORKS)
    nat = hns_network_from_probe(networks)
    assert nat is not None and nat.subnet == "172.22.16.0/20"
    ics = hns_network_from_probe(networks, name="Default Switch")
    assert ics is not None and ics.type == "ICS" and ics.gateway == "172.29.176.1"


def test_hns_network_absent_gives_none() -> None:
    assert hns_network_from_probe("") is None
    assert hns_network_from_probe(None) is None
    assert hns_network_from_probe([]) is None
    assert hns_network_from_probe(json.loads(HNS_TWO_NETWORKS), name="other") is None


def test_hns_network_value_wrapper_from_powershell_51() -> None:
    wrapped = {"value": [json.loads(HNS_NAT)], "Count": 1}
    net = hns_network_from_probe(wrapped)
    assert net is not None and net.gateway == "172.22.16.1"


def test_hns_network_without_subnet_cannot_be_reused() -> None:
    net = hns_network_from_probe({"Name": "nat", "Type": "nat", "ID": "x", "Subnets": []})
    assert net is not None and net.subnet is None
    with pytest.raises(NetworkError, match="no subnet"):
        net.validate()


def test_existing_network_that_overlaps_the_host_is_not_reused() -> None:
    net = hns_network_from_probe(json.loads(HNS_NAT))
    assert net is not None
    with pytest.raises(NetworkError, match="overlaps host interface 172.22.20.7/24"):
        net.validate(host_prefixes=["172.22.20.7/24"])


def test_hns_probe_failure_is_not_read_as_missing_network() -> None:
    with pytest.raises(ValueError, match="HostNetworkingService"):
        hns_network_from_probe({"error": "The term 'Get-HnsNetwork' is not recognized (HostNetworkingService)"})
