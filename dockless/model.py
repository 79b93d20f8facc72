"""What plugins describe: components, their steps, and the settings they accept.

Plugins describe, the host decides: a component names what it ``requires`` (components or
roles) and the host orders, validates and turns it into invoke tasks.
"""
from __future__ import annotations

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
    """A setting a component accepts in its ``[section]`` of dockless.toml."""

    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


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
