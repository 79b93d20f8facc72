"""What plugins describe: components, their steps, and the settings they accept.

Plugins describe, the host decides: a component names what it ``requires`` (components or
roles) and the host orders, validates and turns it into invoke tasks.
"""
from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockless.actions import Action
    from dockless.session import Session

PLATFORMS = ("windows", "linux")

PlanFn = Callable[["Session"], "Sequence[Action]"]
"""Look at the host and return what must change; an empty list means satisfied."""


@dataclass(frozen=True)
class Setting:
    """A setting a component accepts in its ``[section]`` of dockless.toml.

    ``kind`` is the TOML type a value must have: ``str``, ``int`` (not a boolean), ``float``
    (an integer is accepted), ``bool``, ``list`` or ``dict``; ``None`` means the type of
    ``default`` (anything when ``choices`` is given or ``default`` is ``None``). ``check``
    gets a value of that kind and returns ``None`` or what is wrong with it, e.g. ``"must be
    at least 0"``; the host reports ``[section] key = value <what is wrong>`` and stops before
    anything runs. Ready-made checks: :func:`at_least`, :func:`ipv4_network`,
    :func:`interface_name`, :func:`non_empty`, :func:`image_reference`, :func:`cidr_list`,
    :func:`optional` (``""`` or what another check accepts).
    """

    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    kind: type | None = None
    check: Callable[[Any], str | None] | None = None

    @property
    def value_kind(self) -> type | None:
        """The type values must have (``kind``, else the default's type; ``None``: any)."""
        if self.kind is not None:
            return self.kind
        if self.choices or self.default is None:
            return None
        return type(self.default)

    def problem(self, key: str, value: Any) -> str | None:
        """What is wrong with ``key = value`` (without the ``[section]`` prefix), or ``None``."""
        if self.choices is not None:
            if not any(type(value) is type(c) and value == c for c in self.choices):
                return f"{key} = {value!r} must be one of {', '.join(_toml_word(c) for c in self.choices)}"
            return None
        kind = self.value_kind
        if kind is not None and not _is_kind(value, kind):
            return f"{key} = {value!r} must be {_KIND_NAMES.get(kind, kind.__name__)}, such as {key} = {_example(kind, value, self.default)}"
        if self.check is not None:
            found = self.check(value)
            if found:
                return f"{key} = {value!r} {found}"
        return None


@dataclass(frozen=True)
class Step:
    """One check → apply unit, run as the invoke task ``<component>.<name>``.

    ``task`` is a real module-level function (its docstring is the task's ``--help``) whose body
    is ``run_step(c, "<component>.<name>")``. ``probe`` is a PowerShell snippet whose value
    (converted to JSON) the host gathers for all steps in one PowerShell process; the step reads
    it with ``session.probe("<component>.<name>")``. ``undo`` returns the actions that reverse it.
    """

    name: str
    plan: PlanFn
    task: Callable[..., Any]
    platforms: tuple[str, ...] = PLATFORMS
    probe: str | None = None
    undo: PlanFn | None = None


@dataclass(frozen=True)
class Component:
    """A unit of the install (containerd, crictl …) as a plugin describes it."""

    name: str
    steps: tuple[Step, ...]
    platforms: tuple[str, ...] = PLATFORMS
    role: str | None = None
    requires: tuple[str, ...] = ()
    settings: Mapping[str, Setting] = field(default_factory=dict)
    templates: Path | None = None
    tasks: tuple[Callable[..., Any], ...] = ()
    description: str = ""

    @property
    def key(self) -> str:
        """The config/module spelling: ``cni-nat`` → ``cni_nat``."""
        return config_key(self.name)

    def steps_for(self, platform: str) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if platform in s.platforms)


def config_key(name: str) -> str:
    """One helper for both spellings: CLI/plugin names use ``-``, config keys and modules ``_``."""
    return name.replace("-", "_")


# -- values: kinds and ready-made checks for Setting(check=...) ------------------------------------
_KIND_NAMES: dict[type, str] = {
    str: "a string", int: "a whole number", float: "a number", bool: "true or false",
    list: "a list", dict: "a table",
}


def _is_kind(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def toml_value(value: Any) -> str:
    """``value`` as it is written in dockless.toml (``"text"``, ``true``, ``[1, 2]`` …)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def _toml_word(choice: Any) -> str:
    return choice if isinstance(choice, str) and choice else toml_value(choice)


def _example(kind: type, value: Any, default: Any) -> str:
    """A value of ``kind`` for the message: the user's own value converted when that is
    obvious (``"30"`` → ``30``, ``"10.0.0.0/8"`` → ``["10.0.0.0/8"]``), else the default."""
    if kind is list and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return toml_value([value])
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return toml_value(str(value))
    if kind in (int, float) and isinstance(value, str):
        try:
            return toml_value(kind(value.strip()))
        except ValueError:
            pass
    if kind is bool and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    return toml_value(default)


def at_least(minimum: int) -> Callable[[Any], str | None]:
    """A check: a number not below ``minimum``."""
    def check(value: Any) -> str | None:
        return None if value >= minimum else f"must be at least {minimum}"
    return check


def optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """A check that also accepts ``""`` (for settings where empty means "the default")."""
    def either(value: Any) -> str | None:
        return None if value == "" else check(value)
    return either


def non_empty(value: Any) -> str | None:
    """A check: not an empty (or blank) string or list."""
    empty = not value.strip() if isinstance(value, str) else not value
    return "must not be empty" if empty else None


def ipv4_network(value: str) -> str | None:
    """A check: an IPv4 network written address/prefix, the address being the network's
    first one (``10.88.0.0/16``, not ``10.88.0.1/16``)."""
    text = value.strip()
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return 'must be an IPv4 network such as "10.88.0.0/16"'
        return f"must be the network address: did you mean {loose.with_prefixlen!r}?"
    if not isinstance(net, ipaddress.IPv4Network):
        return 'must be an IPv4 network (IPv6 is not supported) such as "10.88.0.0/16"'
    if "/" not in text:
        return f"must name the prefix length too, such as {text + '/16'!r}"
    if net.prefixlen > 30:
        return "leaves no addresses for pods: use a prefix of /30 or shorter, such as /16"
    return None


_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def interface_name(value: str) -> str | None:
    """A check: a Linux network interface name (1 to 15 of ``A-Z a-z 0-9 _ . -``)."""
    if not _IFNAME.match(value) or value in (".", ".."):
        return "must be a network interface name: 1 to 15 letters, digits, '_', '.' or '-'"
    return None


# the grammar of github.com/distribution/reference (without IPv6 registries)
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,})?$"
)


def image_reference(value: str) -> str | None:
    """A check: a container image reference (``registry.k8s.io/pause:3.10.2``, ``busybox``,
    ``name@sha256:…``)."""
    if not value.strip():
        return 'must be an image reference such as "registry.k8s.io/pause:3.10.2"'
    if value != value.strip() or not _REFERENCE.match(value) or len(value.split("@")[0].rsplit(":", 1)[0]) > 255:
        return 'is not an image reference: write REGISTRY/REPOSITORY:TAG, such as "registry.k8s.io/pause:3.10.2"'
    return None


def cidr_list(value: list[Any]) -> str | None:
    """A check: a list of IPv4 networks or addresses (``["10.0.0.0/8", "192.168.1.5"]``)."""
    for item in value:
        if not isinstance(item, str):
            return f'must be a list of strings such as ["10.0.0.0/8"]; {item!r} is not a string'
        try:
            net = ipaddress.ip_network(item.strip(), strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                return f'lists {item!r}, which is not an IPv4 network: write it as "10.0.0.0/8"'
            return f"lists {item!r}, which is not a network address: did you mean {loose.with_prefixlen!r}?"
        if not isinstance(net, ipaddress.IPv4Network):
            return f"lists {item!r}, which is IPv6; only IPv4 networks are supported"
    return None
