"""Validation of the Windows NAT network (HNS ``nat``): subnet, gateway, host overlap.

Everything here is pure: it takes strings or the parsed JSON of a PowerShell probe and
answers with :mod:`ipaddress` objects or a :class:`NetworkError` whose message is one line
that names the setting and the fix (field case C08).

Probes this module understands (both run under Windows PowerShell 5.1):

* host addresses::

      Get-NetIPAddress -AddressFamily IPv4 |
          Select-Object IPAddress,PrefixLength,InterfaceAlias | ConvertTo-Json

* the existing NAT network::

      Get-HnsNetwork | Where-Object Name -eq 'nat' |
          Select-Object Name,Type,Id,Subnets | ConvertTo-Json -Depth 5

``ConvertTo-Json`` in 5.1 prints a single object (not a one-element list) when the pipeline
yields one record, prints nothing at all when it yields none, and sometimes wraps arrays as
``{"value": [...], "Count": n}``; every parser here accepts all of those shapes.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HnsNetwork",
    "NetworkError",
    "PRIVATE_BLOCKS",
    "hns_network_from_probe",
    "host_prefixes_from_probe",
    "suggest_free_subnet",
    "validate_nat",
    "validate_subnet",
]

#: Private IPv4 blocks searched by :func:`suggest_free_subnet`, in order of preference
#: (172.16/12 first: the range Windows itself uses for ``nat`` and the Default Switch).
PRIVATE_BLOCKS: tuple[ipaddress.IPv4Network, ...] = (
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("192.168.0.0/16"),
)

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")

#: Host interfaces ignored by default: the vNIC HNS itself adds for the ``nat`` network
#: carries the NAT gateway address and would otherwise "overlap" the network it belongs to.
DEFAULT_EXCLUDED_ALIASES: tuple[str, ...] = ("vEthernet (nat)",)


class NetworkError(ValueError):
    """A NAT network setting that cannot work, with a one-line message naming the fix.

    ``setting`` is the dotted setting name (``hns.subnet``, ``hns.gateway``), and
    ``suggestion`` a value that would work, when one can be computed.
    """

    def __init__(self, message: str, *, setting: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.suggestion = suggestion


@dataclass(frozen=True)
class HnsNetwork:
    """An HNS network as reported by ``Get-HnsNetwork`` (first subnet only).

    ``subnet`` and ``gateway`` are the strings HNS reports (``None`` when the network has
    no subnet); call :meth:`validate` before reusing them.
    """

    name: str
    type: str
    id: str
    subnet: str | None
    gateway: str | None

    def validate(
        self, *, host_prefixes: Sequence[str] = (), setting: str = "hns"
    ) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
        """Check that this existing network is usable; see :func:`validate_nat`."""
        if not self.subnet or not self.gateway:
            raise NetworkError(
                f"HNS network {self.name!r} has no subnet/gateway; remove it "
                f"(Remove-HnsNetwork) so dockless can re-create it",
                setting=f"{setting}.subnet",
            )
        return validate_nat(
            self.subnet, self.gateway, host_prefixes=host_prefixes, setting=setting
        )


def _first_host(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return net.network_address + 1


def _parse_subnet(subnet: str, key: str) -> ipaddress.IPv4Network:
    text = str(subnet).strip()
    if "/" not in text:
        raise NetworkError(
            f'{key} "{text}" has no prefix length; write it in CIDR form, e.g. "{text}/16"',
            setting=key,
        )
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise NetworkError(
            f'{key} "{text}" is not an IPv4 network in CIDR form; use e.g. "172.16.0.0/16"',
            setting=key,
        ) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise NetworkError(
            f'{key} "{text}" is IPv6; the Windows nat network needs an IPv4 subnet, '
            f'e.g. "172.16.0.0/16"',
            setting=key,
        )
    if str(net.network_address) != text.split("/", 1)[0].strip():
        # ip_network(strict=True) would refuse it; say which network was meant.
        raise NetworkError(
            f'{key} "{text}" is not a network address; did you mean {net.with_prefixlen}?',
            setting=key,
            suggestion=net.with_prefixlen,
        )
    if net.with_prefixlen != text:
        raise NetworkError(
            f'{key} "{text}" must be written in CIDR form: "{net.with_prefixlen}"',
            setting=key,
            suggestion=net.with_prefixlen,
        )
    if net.prefixlen > 30:
        raise NetworkError(
            f"{key} {net} leaves no addresses for containers; use a prefix of /30 or "
            f"shorter, e.g. {net.supernet(new_prefix=24)}",
            setting=key,
        )
    return net


def _parse_gateway(gateway: str, net: ipaddress.IPv4Network, key: str, subnet_key: str) -> ipaddress.IPv4Address:
    text = str(gateway).strip()
    example = _first_host(net)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise NetworkError(
            f'{key} "{text}" is not an IPv4 address; use a host address of {net}, e.g. {example}',
            setting=key,
            suggestion=str(example),
        ) from None
    if not isinstance(addr, ipaddress.IPv4Address):
        raise NetworkError(
            f'{key} "{text}" is IPv6; use an IPv4 host address of {net}, e.g. {example}',
            setting=key,
            suggestion=str(example),
        )
    if addr not in net:
        raise NetworkError(
            f"{key} {addr} is outside {subnet_key} {net}; use an address inside it, "
            f"e.g. {example}",
            setting=key,
            suggestion=str(example),
        )
    if addr == net.network_address or addr == net.broadcast_address:
        which = "network" if addr == net.network_address else "broadcast"
        raise NetworkError(
            f"{key} {addr} is the {which} address of {net}; use a host address, e.g. {example}",
            setting=key,
            suggestion=str(example),
        )
    return addr


def _as_network(prefix: str) -> ipaddress.IPv4Network | None:
    """``10.0.0.4/24`` (an interface) or ``10.0.0.0/24`` → its network; IPv6 → None."""
    iface = ipaddress.ip_interface(str(prefix).strip())
    if not isinstance(iface, ipaddress.IPv4Interface):
        return None
    return iface.network


def validate_subnet(subnet: str, *, setting: str = "hns") -> ipaddress.IPv4Network:
    """Validate only the subnet half of :func:`validate_nat` (``{setting}.subnet``)."""
    return _parse_subnet(subnet, f"{setting}.subnet")


def validate_nat(
    subnet: str,
    gateway: str,
    *,
    host_prefixes: Sequence[str] = (),
    setting: str = "hns",
) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
    """Validate a NAT network's subnet and gateway; return them parsed.

    Refuses, with a :class:`NetworkError` naming ``{setting}.subnet`` or
    ``{setting}.gateway``:

    * a subnet that is not its own network address (``172.22.16.0/16`` →
      "did you mean 172.22.0.0/16?"), that lacks a prefix, is IPv6 or is longer than /30;
    * a gateway that is not an IPv4 address, lies outside the subnet, or is the network
      or broadcast address;
    * a subnet that overlaps any of ``host_prefixes`` (host interfaces such as
      ``10.0.0.4/24``; see :func:`host_prefixes_from_probe`). The error suggests a free
      range of the same size from :func:`suggest_free_subnet`.
    """
    subnet_key = f"{setting}.subnet"
    gateway_key = f"{setting}.gateway"
    net = _parse_subnet(subnet, subnet_key)
    gw = _parse_gateway(gateway, net, gateway_key, subnet_key)
    for prefix in host_prefixes:
        host_net = _as_network(prefix)
        if host_net is not None and net.overlaps(host_net):
            try:
                free = suggest_free_subnet(list(host_prefixes), net.prefixlen)
            except NetworkError:
                hint = "pick a private range no host interface uses"
                free = None
            else:
                hint = (
                    f'pick a free range, e.g. {subnet_key} = "{free}" with '
                    f'{gateway_key} = "{_first_host(ipaddress.IPv4Network(free))}"'
                )
            raise NetworkError(
                f"{subnet_key} {net} overlaps host interface {prefix}; {hint}",
                setting=subnet_key,
                suggestion=free,
            )
    return net, gw


def suggest_free_subnet(taken: Sequence[str], prefixlen: int = 16) -> str:
    """Return the first private ``/prefixlen`` network that overlaps none of ``taken``.

    Candidates come from :data:`PRIVATE_BLOCKS` in order (172.16.0.0/16 … 172.31.0.0/16,
    then 10.x, then 192.168.x for /16). ``taken`` holds networks or interface addresses
    (``10.0.0.4/24``); IPv6 entries are ignored. Raises :class:`NetworkError` when the
    prefix length is unusable or every candidate is taken.
    """
    if not 8 <= prefixlen <= 30:
        raise NetworkError(
            f"prefix length /{prefixlen} is not usable for a nat network; use /8 to /30",
            setting="prefixlen",
        )
    used = sorted(
        (n for n in (_as_network(t) for t in taken) if n is not None),
        key=lambda n: int(n.network_address),
    )
    size = 1 << (32 - prefixlen)
    for block in PRIVATE_BLOCKS:
        if block.prefixlen > prefixlen:
            continue
        start = int(block.network_address)
        end = int(block.broadcast_address)
        cur = start
        while cur + size - 1 <= end:
            cand = ipaddress.IPv4Network((cur, prefixlen))
            clash = next((u for u in used if cand.overlaps(u)), None)
            if clash is None:
                return cand.with_prefixlen
            # jump past the clashing network, staying aligned to the candidate size
            after = int(clash.broadcast_address) + 1
            cur = max(cur + size, -(-after // size) * size)
    raise NetworkError(
        f"no free private /{prefixlen} network left (all overlap host interfaces); "
        f"set the subnet by hand",
        setting="prefixlen",
    )


def _records(obj: Any) -> list[Any]:
    """Normalise ConvertTo-Json output: None/""/object/list/{"value": [...]} → list.

    Raises ValueError for a failed probe (``{"error": "..."}``).
    """
    if obj is None:
        return []
    if isinstance(obj, (str, bytes)):
        text = obj.decode("utf-8-sig") if isinstance(obj, bytes) else obj.lstrip("\ufeff")
        if not text.strip():
            return []
        obj = json.loads(text)
    if isinstance(obj, dict):
        keys = {k.lower() for k in obj}
        if keys == {"error"}:
            # dockless.powershell.probe_script's shape for a probe that threw: never read
            # it as "nothing there" (that would re-create an existing network)
            raise ValueError(f"the probe failed: {next(iter(obj.values()))}")
        if keys <= {"value", "count"} and isinstance(obj.get("value"), list):
            return list(obj["value"])
        return [obj]
    if isinstance(obj, list):
        return list(obj)
    raise TypeError(f"expected a JSON object or list, got {type(obj).__name__}")


def _get(record: dict[str, Any], name: str) -> Any:
    """Case-insensitive property lookup (``Id`` vs ``ID``)."""
    if name in record:
        return record[name]
    lowered = name.lower()
    for key, value in record.items():
        if key.lower() == lowered:
            return value
    return None


def host_prefixes_from_probe(
    records: list[dict[str, Any]] | dict[str, Any] | str | None,
    *,
    exclude_aliases: Iterable[str] = DEFAULT_EXCLUDED_ALIASES,
) -> list[str]:
    """Host IPv4 prefixes (``"10.0.0.4/24"``) from the ``Get-NetIPAddress`` probe JSON.

    Accepts the parsed JSON (a list, or a single object when the host has one address),
    or the raw text. Skips loopback (127.0.0.0/8), APIPA (169.254.0.0/16), IPv6 entries
    and interfaces named in ``exclude_aliases`` (by default the ``vEthernet (nat)`` vNIC
    that belongs to the NAT network itself). Order is kept, duplicates dropped.
    """
    excluded = {a.lower() for a in exclude_aliases}
    out: list[str] = []
    for rec in _records(records):
        if not isinstance(rec, dict):
            continue
        ip = _get(rec, "IPAddress")
        plen = _get(rec, "PrefixLength")
        alias = _get(rec, "InterfaceAlias")
        if ip is None or plen is None:
            continue
        if isinstance(alias, str) and alias.lower() in excluded:
            continue
        try:
            iface = ipaddress.ip_interface(f"{str(ip).split('%', 1)[0]}/{int(plen)}")
        except ValueError:
            continue
        if not isinstance(iface, ipaddress.IPv4Interface):
            continue
        if iface.ip in _LOOPBACK or iface.ip in _LINK_LOCAL:
            continue
        text = iface.with_prefixlen
        if text not in out:
            out.append(text)
    return out


def hns_network_from_probe(
    obj: list[dict[str, Any]] | dict[str, Any] | str | None, *, name: str = "nat"
) -> HnsNetwork | None:
    """The HNS network called ``name`` from the ``Get-HnsNetwork`` probe JSON, or None.

    Accepts the parsed JSON or its raw text; an empty probe (no such network) gives None.
    ``Subnets`` may be a list, a single object or a ``{"value": [...]}`` wrapper; the first
    subnet's ``AddressPrefix``/``GatewayAddress`` are used (as the nat plugin does).
    Property names are matched case-insensitively (HNS reports ``ID``).
    """
    for rec in _records(obj):
        if not isinstance(rec, dict):
            continue
        rec_name = _get(rec, "Name")
        if not isinstance(rec_name, str) or rec_name.lower() != name.lower():
            continue
        raw_subnets = _get(rec, "Subnets")
        if not isinstance(raw_subnets, (list, dict)):
            raw_subnets = None
        subnets = [s for s in _records(raw_subnets) if isinstance(s, dict)]
        first = subnets[0] if subnets else {}
        prefix = _get(first, "AddressPrefix")
        gateway = _get(first, "GatewayAddress")
        return HnsNetwork(
            name=rec_name,
            type=str(_get(rec, "Type") or ""),
            id=str(_get(rec, "Id") or ""),
            subnet=str(prefix) if prefix else None,
            gateway=str(gateway) if gateway else None,
        )
    return None
