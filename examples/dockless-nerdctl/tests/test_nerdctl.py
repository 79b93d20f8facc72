"""dockless-nerdctl with the dockless.testing fixtures."""
from __future__ import annotations

from typing import Any

import pytest

from dockless.registry import PluginError
from dockless_nerdctl import plugin

ENABLED = {"nerdctl": {"enabled": True}}


def test_enabled_nerdctl_runs_after_containerd(dockless_plan: Any) -> None:
    entries = dockless_plan("linux", ENABLED, [plugin])
    names = [e.task for e in entries]
    assert names.index("containerd.service") < names.index("nerdctl.install") < names.index("nerdctl.config")
    install = next(e for e in entries if e.task == "nerdctl.install")
    assert any("containerd/nerdctl/releases/download/v2.1.6/nerdctl-2.1.6-linux-amd64.tar.gz" in c for c in install.changes)
    (conf,) = next(e for e in entries if e.task == "nerdctl.config").files
    assert conf["path"].endswith("/etc/nerdctl/nerdctl.toml")
    assert "address = 'unix://" in conf["content"] and "containerd.sock'" in conf["content"]
    assert "namespace = 'k8s.io'" in conf["content"]


def test_installed_but_not_enabled_changes_nothing(dockless_plan: Any) -> None:
    entries = dockless_plan("linux", None, [plugin])
    assert [e.changes for e in entries if e.task.startswith("nerdctl.")] == [[], []]


def test_not_on_windows(dockless_plan: Any) -> None:
    assert not [e for e in dockless_plan("windows", ENABLED, [plugin]) if e.task.startswith("nerdctl.")]


def test_bad_version_is_one_line(dockless_plan: Any) -> None:
    found = dockless_plan.problems("linux", {"nerdctl": {"enabled": True, "version": "2.1"}}, [plugin])
    assert len(found) == 1 and "[nerdctl] version = '2.1' is not a full release version" in found[0]


def test_task_tree_has_its_task_and_pre_tasks(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockless.namespace import build_namespace
    from dockless.settings import load_settings

    monkeypatch.chdir(tmp_path)
    settings = load_settings({"DOCKLESS_TARGET": "linux", "DOCKLESS_ROOT": str(tmp_path / "root")}, cwd=tmp_path)
    ns = build_namespace(settings, entry_points=False, extra=(plugin,))
    coll = ns.collections["nerdctl"]
    assert sorted(coll.task_names) == ["config", "install", "ps"]
    assert [t.name for t in coll["install"].pre] == ["service"]  # containerd's last step


def test_requiring_something_nobody_provides_is_named(dockless_registry: Any) -> None:
    from types import SimpleNamespace

    from dockless import hookimpl
    from dockless.model import Component

    @hookimpl
    def dockless_register_components(registry: Any) -> None:
        registry.add(Component(name="nerdctl-extra", steps=(), requires=("buildkitd",)))

    other = SimpleNamespace(__name__="nerdctl-extra", dockless_register_components=dockless_register_components)
    reg = dockless_registry([plugin, other])
    with pytest.raises(PluginError, match="'nerdctl-extra' .* requires 'buildkitd', which no plugin provides"):
        reg.select("linux", {})
