"""The registry plugins hand components to: validation, role selection and ordering."""
from __future__ import annotations

import graphlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dockless.model import Component, Step


class PluginError(Exception):
    """A plugin problem found while building the task tree; names the plugin and the fix."""


@dataclass
class Registry:
    """Collects components from plugins (``add``) and answers what runs, in which order."""

    components: dict[str, Component] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    extra_tasks: dict[str, list[tuple[str, Callable[..., Any]]]] = field(default_factory=dict)
    current_plugin: str = "<unknown>"
    blocked: set[str] = field(default_factory=set)
    # why a component is inactive on the last ``select``'s target: name -> one line
    inactive: dict[str, str] = field(default_factory=dict)

    def add(self, component: Component) -> None:
        if component.name in self.components:
            raise PluginError(
                f"component {component.name!r} is registered by both {self.owners[component.name]!r} "
                f"and {self.current_plugin!r}: disable one with DOCKLESS_DISABLE_PLUGINS={self.current_plugin}"
            )
        self.components[component.name] = component
        self.owners[component.name] = self.current_plugin

    def add_tasks(self, collection: str, *tasks: Callable[..., Any]) -> None:
        """Extra tasks (``pod.create``, ``image.pull`` …) in a collection of their own."""
        self.extra_tasks.setdefault(collection, []).extend((self.current_plugin, t) for t in tasks)

    # -- roles -------------------------------------------------------------------------------
    def providers(self, role: str, target: str | None = None) -> list[Component]:
        return [
            c for c in self.components.values()
            if c.role == role and (target is None or target in c.platforms)
        ]

    def roles(self) -> set[str]:
        return {c.role for c in self.components.values() if c.role}

    def select(self, target: str, choices: dict[str, str | None]) -> list[Component]:
        """The components active on ``target``: every plain component for the platform and, per
        role, the chosen provider (``choices[role]``), else the one built-in default. A second
        installed provider never takes over by itself. A plain component that only blocked
        providers require goes with them (``hns`` with ``cni-nat`` when another ``cni`` is chosen)."""
        chosen: set[str] = set()
        blocked: set[str] = set()
        for role in sorted(self.roles()):
            active_provider = self._choose(role, target, choices.get(role))
            if active_provider:
                chosen.add(active_provider.name)
            blocked |= {p.name for p in self.providers(role, target) if p is not active_provider}
        active = [
            c for c in self.components.values()
            if c.name in chosen or (c.role is None and target in c.platforms)
        ]
        self.blocked = blocked
        self.inactive = {}
        for name in sorted(blocked):
            role = self.components[name].role
            winner = next((c for c in chosen if self.components[c].role == role), "none")
            self.inactive[name] = f"blocked: {role} is {winner}"
        self.inactive.update(self._exclusive_to_blocked(active, blocked, target))
        for comp in self.components.values():
            if target not in comp.platforms:
                self.inactive.setdefault(comp.name, f"not for {target}")
        active = [c for c in active if c.name not in self.inactive]
        return self._ordered(active, target)

    def _exclusive_to_blocked(self, active: list[Component], blocked: set[str], target: str) -> dict[str, str]:
        """Plain components that are required only by blocked providers (or by components that
        go with them): name -> why. Computed to a fixed point, so chains go too."""
        gone: dict[str, str] = {}
        changed = True
        while changed:
            changed = False
            for comp in active:
                if comp.role is not None or comp.name in gone:
                    continue
                users = [c.name for c in self.components.values()
                         if target in c.platforms and comp.name in c.requires]
                if users and all(u in blocked or u in gone for u in users):
                    gone[comp.name] = f"blocked: only needed by {', '.join(sorted(users))}"
                    changed = True
        return gone

    def _choose(self, role: str, target: str, wanted: str | None) -> Component | None:
        candidates = self.providers(role, target)
        if wanted:
            named = [c for c in self.providers(role) if c.name == wanted]
            if not named:
                names = ", ".join(c.name for c in self.providers(role)) or "none"
                raise PluginError(f"{role} provider {wanted!r} is not installed; installed {role} providers: {names}")
            if target in named[0].platforms:
                return named[0]
            # a choice for another platform (one dockless.toml for Windows and Linux hosts):
            # this target keeps its default, which is chosen below as if nothing was selected
        if not candidates:
            return None
        builtin = [c for c in candidates if self.owners[c.name].startswith("dockless.")]
        third = [c for c in candidates if c not in builtin]
        if len(builtin) == 1:
            return builtin[0]  # an installed third-party provider needs an explicit choice
        if len(third) == 1 and not builtin:
            return third[0]
        names = " and ".join(f"{c.name!r} ({self.owners[c.name]})" for c in candidates)
        raise PluginError(f"two {role} providers for {target}: {names}; choose one with DOCKLESS_{role.upper()}=NAME or {role} = \"NAME\" in dockless.toml")

    # -- order -------------------------------------------------------------------------------
    def _ordered(self, active: list[Component], target: str) -> list[Component]:
        by_name = {c.name: c for c in active}
        role_of = {c.role: c.name for c in active if c.role}
        known = set(self.components) | self.roles()
        graph: dict[str, set[str]] = {}
        for comp in active:
            deps: set[str] = set()
            for req in comp.requires:
                if req not in known:
                    raise PluginError(f"component {comp.name!r} ({self.owners[comp.name]}) requires {req!r}, which no plugin provides")
                name = role_of.get(req, req)
                if name in by_name:  # a requirement for another platform is not active here
                    deps.add(name)
            graph[comp.name] = deps
        sorter = graphlib.TopologicalSorter(graph)
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise PluginError(f"requires form a cycle: {cycle}; remove one of these requires") from None
        # stable: among the components whose requirements are met, registration order wins
        order: list[str] = []
        pending = [c.name for c in active]
        while pending:
            name = next(n for n in pending if graph[n] <= set(order))
            order.append(name)
            pending.remove(name)
        return [by_name[n] for n in order]

    @staticmethod
    def steps(components: Iterable[Component], target: str) -> list[tuple[Component, Step]]:
        return [(c, s) for c in components for s in c.steps_for(target)]

    @staticmethod
    def collection_name(component: Component) -> str:
        """Role providers live under the role's name (``cni.install``), others under their own."""
        return component.role or component.name
