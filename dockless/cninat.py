"""The Windows CNI ``nat`` conf (microsoft/windows-container-networking) as data.

:func:`nat_conf` builds the conf dockless writes; :func:`validate_nat_conf` inspects a conf
that came from a user or a third-party plugin and lists what is wrong with it (field case
C07). :func:`conf_json` is the one serialisation, so the written bytes are stable and a
re-run can compare them.

Facts encoded here (checked against the plugin sources):

* the plugin validates ``cniVersion`` against a fixed list (``cni/cni.go``
  ``VersionsSupported``): ``0.2.0``/``0.3.0`` up to plugin v0.3.0, then
  ``0.2.0``/``0.3.0``/``0.4.0``/``1.0.0`` — never ``0.3.1``, the usual Linux default;
* ``ipam.routes`` entries are CNI routes (``dst``/``gw``); the plugin takes the gateway
  from ``routes[0].gw`` and silently ignores a ``"gateway"`` key, falling back to the
  subnet's address + 1;
* ``name`` is the HNS network name; the plugin re-creates a missing network from
  ``ipam.subnet`` and that gateway, so both must be right;
* without ``capabilities.portMappings`` the runtime never passes port mappings (they are
  silently dropped), without ``capabilities.dns`` the pod DNS settings are not passed;
* extra endpoint policies go in ``AdditionalArgs`` as ``{"Name": "EndpointPolicy",
  "Value": <HCN policy>}``; the plugin creates endpoints through HCN (schema v2), where an
  outbound-NAT exception list is ``{"Type": "OutBoundNAT", "Settings": {"Exceptions": [..]}}``
  (the HNS v1 spelling ``"ExceptionList"`` is dropped without an error).
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from dockless.netcheck import NetworkError, validate_nat, validate_subnet

__all__ = [
    "CniConfError",
    "SUPPORTED_CNI_VERSIONS",
    "conf_json",
    "nat_conf",
    "supported_cni_versions",
    "validate_nat_conf",
]

#: cniVersion values nat.exe accepts, keyed by windows-container-networking release
#: (without the leading ``v``). 0.3.1 added 0.4.0/1.0.0; 0.3.2/0.3.3 did not change the
#: list (the 0.3.1-support pull request was never merged).
SUPPORTED_CNI_VERSIONS: dict[str, tuple[str, ...]] = {
    "0.2.0": ("0.2.0", "0.3.0"),
    "0.3.0": ("0.2.0", "0.3.0"),
    "0.3.1": ("0.2.0", "0.3.0", "0.4.0", "1.0.0"),
    "0.3.2": ("0.2.0", "0.3.0", "0.4.0", "1.0.0"),
    "0.3.3": ("0.2.0", "0.3.0", "0.4.0", "1.0.0"),
}

PLUGIN_PROJECT = "windows-container-networking"


class CniConfError(ValueError):
    """A CNI conf dockless refuses to write (one line naming the setting and the fix)."""


def _plugin_key(plugin_version: str) -> str:
    text = str(plugin_version).strip()
    return text[1:] if text[:1] in ("v", "V") else text


def supported_cni_versions(plugin_version: str) -> tuple[str, ...]:
    """The cniVersion list for a plugin release (``"0.3.1"`` or ``"v0.3.1"``).

    Raises :class:`CniConfError` naming the known releases for an unknown one.
    """
    key = _plugin_key(plugin_version)
    try:
        return SUPPORTED_CNI_VERSIONS[key]
    except KeyError:
        known = ", ".join(f"v{v}" for v in SUPPORTED_CNI_VERSIONS)
        raise CniConfError(
            f"cni_nat.version {plugin_version!r} is not a known {PLUGIN_PROJECT} release; "
            f"use one of {known}"
        ) from None


def _unsupported(cni_version: object, plugin_version: str, where: str) -> str:
    supported = supported_cni_versions(plugin_version)
    return (
        f"{where} {json.dumps(cni_version)} is not accepted by nat.exe from "
        f"{PLUGIN_PROJECT} v{_plugin_key(plugin_version)}; use one of {', '.join(supported)}"
    )


def _outbound_nat_policy(exceptions: Sequence[str]) -> dict[str, Any]:
    return {
        "Name": "EndpointPolicy",
        "Value": {"Type": "OutBoundNAT", "Settings": {"Exceptions": list(exceptions)}},
    }


def _normalise_exception(item: str) -> str:
    text = str(item).strip()
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise CniConfError(
                f"cni_nat.outbound_nat_exceptions: {text!r} is not an IPv4 address or "
                f"CIDR; use e.g. \"10.0.0.0/8\""
            ) from None
        raise CniConfError(
            f"cni_nat.outbound_nat_exceptions: {text!r} is not a network address; "
            f"did you mean {loose.with_prefixlen}?"
        ) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise CniConfError(
            f"cni_nat.outbound_nat_exceptions: {text!r} is IPv6; the nat network is IPv4 only"
        )
    return text


def nat_conf(
    *,
    name: str,
    subnet: str,
    gateway: str,
    plugin_version: str,
    cni_version: str | None = None,
    outbound_nat_exceptions: Sequence[str] = (),
    master: str | None = None,
) -> dict[str, Any]:
    """Return the nat conf for ``windows-container-networking`` ``plugin_version``.

    ``cni_version`` defaults to the newest version the plugin accepts; one it does not
    accept raises :class:`CniConfError` naming the supported list. ``subnet``/``gateway``
    go through :func:`dockless.netcheck.validate_nat` (a :class:`NetworkError` for a bad
    pair). The route uses ``dst``/``gw``; ``outbound_nat_exceptions`` (addresses or CIDRs
    that bypass outbound NAT) become one HCN ``OutBoundNAT`` endpoint policy; ``master``
    (the host adapter, e.g. ``"Ethernet"``) is written only when given.

    Keys come out in a fixed order, so :func:`conf_json` of equal inputs is byte-identical.
    """
    supported = supported_cni_versions(plugin_version)
    version = supported[-1] if cni_version is None else str(cni_version).strip()
    if version not in supported:
        raise CniConfError(_unsupported(version, plugin_version, "cni_nat.cni_version"))
    if not isinstance(name, str) or not name.strip():
        raise CniConfError("cni_nat.network_name is empty; use the HNS network name, e.g. \"nat\"")
    net, gw = validate_nat(subnet, gateway, setting="cni_nat")
    conf: dict[str, Any] = {
        "cniVersion": version,
        "name": name,
        "type": "nat",
    }
    if master:
        conf["master"] = master
    conf["capabilities"] = {"portMappings": True, "dns": True}
    conf["ipam"] = {
        "subnet": net.with_prefixlen,
        "routes": [{"dst": "0.0.0.0/0", "gw": str(gw)}],
    }
    exceptions = [_normalise_exception(e) for e in outbound_nat_exceptions]
    if exceptions:
        conf["AdditionalArgs"] = [_outbound_nat_policy(exceptions)]
    return conf


def conf_json(conf: dict[str, Any]) -> str:
    """The canonical text of a conf: 2-space indent, key order kept, ASCII, final newline.

    Write it as UTF-8 without a BOM.
    """
    return json.dumps(conf, indent=2, ensure_ascii=True) + "\n"


def _nat_plugin(conf: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The nat plugin entry of a .conf or .conflist, with a label for messages."""
    plugins = conf.get("plugins")
    if isinstance(plugins, list):
        for i, plugin in enumerate(plugins):
            if isinstance(plugin, dict) and plugin.get("type") == "nat":
                return plugin, f"plugins[{i}]."
        return None, ""
    return conf, ""


def _check_policies(args: Any, label: str) -> list[str]:
    problems: list[str] = []
    if args is None:
        return problems
    if not isinstance(args, list):
        return [f"{label}AdditionalArgs must be a list of {{Name, Value}} objects"]
    for i, kvp in enumerate(args):
        if not isinstance(kvp, dict):
            problems.append(f"{label}AdditionalArgs[{i}] is not an object")
            continue
        value = {k.lower(): v for k, v in kvp.items()}.get("value")
        if not isinstance(value, dict):
            continue
        lowered = {k.lower(): v for k, v in value.items()}
        if str(lowered.get("type", "")).lower() == "outboundnat" and "exceptionlist" in lowered:
            problems.append(
                f"{label}AdditionalArgs[{i}] uses the HNS v1 key \"ExceptionList\", which nat.exe "
                f"(HCN v2) ignores; write {{\"Type\": \"OutBoundNAT\", \"Settings\": "
                f"{{\"Exceptions\": [...]}}}}"
            )
    return problems


def validate_nat_conf(conf: dict[str, Any], plugin_version: str, *, source: str) -> list[str]:
    """List what is wrong with a nat conf (or a conflist holding one); empty means usable.

    Problems are returned, not raised, so ``doctor`` can show them all and ``setup`` can
    refuse with every reason at once; each is one line starting with ``source`` (e.g. the
    file path or the plugin that supplied the conf). An unknown ``plugin_version`` is a
    dockless settings error and raises :class:`CniConfError`.

    Checked: ``cniVersion`` present and accepted by this plugin release; ``type`` is
    ``nat``; ``name`` set; ``ipam.subnet`` a real network address; ``ipam.routes[0]`` has
    ``gw`` (not ``gateway``) inside the subnet; ``capabilities.portMappings`` and
    ``capabilities.dns`` are true; OutBoundNAT policies use the HCN v2 shape.
    """
    supported = supported_cni_versions(plugin_version)
    if not isinstance(conf, dict):
        return [f"{source}: the conf is not a JSON object"]
    problems: list[str] = []

    def add(msg: str) -> None:
        problems.append(f"{source}: {msg}")

    version = conf.get("cniVersion")
    if version is None:
        add(
            f"cniVersion is missing (read as 0.1.0, which nat.exe refuses); "
            f"set one of {', '.join(supported)}"
        )
    elif version not in supported:
        add(_unsupported(version, plugin_version, "cniVersion"))

    plugin, label = _nat_plugin(conf)
    if plugin is None:
        add('no plugin with "type": "nat" in the conflist')
        return problems
    if plugin.get("type") != "nat":
        add(f'{label}type is {json.dumps(plugin.get("type"))}, expected "nat"')
    if not conf.get("name"):
        add('name is missing; it must be the HNS network name, e.g. "nat"')

    ipam = plugin.get("ipam")
    net: ipaddress.IPv4Network | None = None
    if not isinstance(ipam, dict):
        add(f"{label}ipam is missing; nat.exe needs ipam.subnet and ipam.routes")
    else:
        subnet = ipam.get("subnet")
        if not subnet:
            add(f"{label}ipam.subnet is missing")
        else:
            try:
                net = validate_subnet(str(subnet), setting=f"{label}ipam")
            except NetworkError as exc:
                add(str(exc))
        routes = ipam.get("routes")
        if not isinstance(routes, list) or not routes:
            add(
                f"{label}ipam.routes is missing; add "
                f'[{{"dst": "0.0.0.0/0", "gw": "<gateway>"}}] with the HNS network\'s gateway'
            )
        else:
            for i, route in enumerate(routes):
                if not isinstance(route, dict):
                    add(f"{label}ipam.routes[{i}] is not an object")
                    continue
                keys = {k.lower(): k for k in route}
                if "gateway" in keys and "gw" not in keys:
                    add(
                        f'{label}ipam.routes[{i}] uses "gateway", which nat.exe silently ignores; '
                        f'rename the key to "gw"'
                    )
                elif i == 0 and "gw" not in keys:
                    add(
                        f'{label}ipam.routes[0] has no "gw"; nat.exe then guesses the subnet '
                        f"address + 1; set it to the HNS network's gateway"
                    )
                if "gw" in keys and net is not None:
                    gw_text = str(route[keys["gw"]])
                    try:
                        validate_nat(net.with_prefixlen, gw_text, setting=f"{label}ipam")
                    except NetworkError as exc:
                        add(str(exc).replace(f"{label}ipam.gateway", f"{label}ipam.routes[{i}].gw"))

    caps = plugin.get("capabilities")
    caps = caps if isinstance(caps, dict) else {}
    if caps.get("portMappings") is not True:
        add(
            f'{label}capabilities.portMappings is not true; the runtime then drops port '
            f'mappings silently; add "capabilities": {{"portMappings": true, "dns": true}}'
        )
    if caps.get("dns") is not True:
        add(f"{label}capabilities.dns is not true; pod DNS settings are not passed to nat.exe")

    for msg in _check_policies(plugin.get("AdditionalArgs"), label):
        add(msg)
    return problems
