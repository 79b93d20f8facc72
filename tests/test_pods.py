"""Pod tasks (issue 5): field cases C10/C11 through ``pod.create``, the exact crictl sequence of
``pod.create`` → ``pod.exec`` → ``pod.rm`` on a Windows target (MockContext answering with
crictl's real output formats), and the Linux lane end to end where a real crictl exists.

Windows runs here on Linux: ``Settings.fs_root`` maps ``C:\\…`` onto a temp folder, the host facts
come from the batched PowerShell probe (answered by the MockContext), and every crictl command
line is checked as Windows would run it.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Exit, MockContext, Result

from dockless.cninat import conf_json, nat_conf
from dockless.manager import collect, plugin_manager
from dockless.namespace import bind_session
from dockless.session import Session
from dockless.settings import load_settings
from plugins import crictl as crictl_plugin
from plugins import pods

POD_ID = "5c3ca1ed7f1ac3b1d2e0f6b4c8a9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0"
CTR_ID = "9f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4"
NANOSERVER = "mcr.microsoft.com/windows/nanoserver:ltsc2022"


# -- crictl's real output formats (cri-tools cmd/crictl; protojson with EmitDefaultValues) --------------
def pods_json(*items: dict[str, Any]) -> str:
    return json.dumps({"items": list(items)}, indent=2) + "\n"


def pod_item(name: str = "web", namespace: str = "default", pod_id: str = POD_ID,
             handler: str = "runhcs-wcow-process") -> dict[str, Any]:
    return {
        "id": pod_id,
        "metadata": {"name": name, "uid": f"dockless-{namespace}-{name}", "namespace": namespace, "attempt": 1},
        "state": "SANDBOX_READY",
        "createdAt": "1764777600123456789",
        "labels": {},
        "annotations": {},
        "runtimeHandler": handler,
    }


def containers_json(*items: dict[str, Any]) -> str:
    return json.dumps({"containers": list(items)}, indent=2) + "\n"


def container_item(name: str = "web", ctr_id: str = CTR_ID, pod_id: str = POD_ID) -> dict[str, Any]:
    image_id = "sha256:4b2d1f0e9a8c7b6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
    return {
        "id": ctr_id,
        "podSandboxId": pod_id,
        "metadata": {"name": name, "attempt": 0},
        "image": {"image": image_id, "annotations": {}, "userSpecifiedImage": NANOSERVER, "runtimeHandler": ""},
        "imageRef": image_id,
        "state": "CONTAINER_RUNNING",
        "createdAt": "1764777601123456789",
        "labels": {},
        "annotations": {},
        "imageId": "",
    }


def inspectp_json(ip: str, pod_id: str = POD_ID) -> str:
    """``crictl inspectp -o json``: a JSON object with ``info`` (verbose) and ``status``."""
    return json.dumps({
        "info": {"pid": 0, "processStatus": "running", "runtimeHandler": "runhcs-wcow-process",
                 "runtimeType": "io.containerd.runhcs.v1"},
        "status": {
            "id": pod_id,
            "metadata": {"attempt": 1, "name": "web", "namespace": "default", "uid": "dockless-default-web"},
            "state": "SANDBOX_READY",
            "createdAt": "2025-12-03T16:00:00.123456789Z",
            "network": {"additionalIps": [], "ip": ip},
            "linux": None,
            "labels": {},
            "annotations": {},
            "runtimeHandler": "runhcs-wcow-process",
        },
    }, indent=2) + "\n"


INSPECTI_JSON = json.dumps({"status": {"id": "sha256:4b2d1f0e9a8c", "repoTags": [NANOSERVER], "repoDigests": [],
                                       "size": "120000000", "uid": None, "username": "", "spec": None,
                                       "pinned": False}}, indent=2) + "\n"
IPCONFIG = ("\r\nWindows IP Configuration\r\n\r\n\r\nEthernet adapter vEthernet (5c3ca1ed7f1a_nat):\r\n\r\n"
            "   IPv4 Address. . . . . . . . . . . : 10.0.113.113\r\n"
            "   Default Gateway . . . . . . . . . : 10.0.0.1\r\n")


# -- a Windows target on this machine ------------------------------------------------------------
class WindowsPodHost(MockContext):
    """A MockContext that answers the PowerShell host probe and crictl, and lets a test look at
    the files at the moment of each call (``on_run``)."""

    def __init__(self, responses: dict[Any, Any], *, build: int = 20348, edition: str = "server",
                 on_run: Callable[[str], None] | None = None) -> None:
        probe = json.dumps({"host": {"windows_build": build, "windows_ubr": 2700, "edition": edition,
                                     "caption": "Microsoft Windows Server 2022 Datacenter", "elevated": True,
                                     "reboot_pending": False, "user_profile": "C:\\Users\\Administrator",
                                     "features": {"Containers": "Enabled", "Microsoft-Hyper-V": "Enabled"}}})
        run = {re.compile(r"powershell\.exe "): Result(probe), **responses}
        super().__init__(run=run)
        self._set("_on_run", on_run)

    def run(self, command: str, *args: Any, **kwargs: Any) -> Result:
        if self._on_run is not None:
            self._on_run(command)
        return super().run(command, *args, **kwargs)

    @property
    def commands(self) -> list[str]:
        return [call.args[0] for call in self.run.call_args_list]

    @property
    def crictl_commands(self) -> list[str]:
        return [cmd for cmd in self.commands if "crictl" in cmd.split(" --config ", 1)[0]]


def windows_session(tmp_path: Path, c: MockContext, *, sections: dict[str, dict[str, Any]] | None = None,
                    conf: dict[str, Any] | None = None, installed: bool = True) -> Session:
    """A Windows session whose C:\\ is ``tmp_path/fs/C``, bound to ``c`` (what tasks get from
    ``session_for``); ``conf`` is written as the active CNI conf, ``installed`` puts crictl.exe
    and crictl.yaml where setup would."""
    settings = load_settings({"DOCKLESS_TARGET": "windows"}, cwd=tmp_path)
    settings.fs_root = tmp_path / "fs"
    for name, values in (sections or {}).items():
        settings.sections.setdefault(name, {}).update(values)
    session = Session(c, settings, collect(plugin_manager(entry_points=False)))
    bind_session(c, session)
    lay = session.layout
    if conf is not None:
        path = session.local(lay.cni_conf_dir / "0-containerd-nat.conf")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(conf_json(conf))
    if installed:
        exe = session.local(lay.exe("crictl"))
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_bytes(b"MZ stand-in crictl.exe")
        cfg = session.local(lay.crictl_config)
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_bytes(crictl_plugin.render_config(session))
    return session


def nat(**kw: Any) -> dict[str, Any]:
    return nat_conf(name="nat", subnet="10.0.0.0/16", gateway="10.0.0.1", plugin_version="0.3.1", **kw)


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pods, "stdin_is_tty", lambda: False)


def exits(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Exit:
    with pytest.raises(Exit) as info:
        fn(*args, **kwargs)
    return info.value


def test_pod_tasks_are_registered_in_the_pod_collection() -> None:
    registry = collect(plugin_manager(entry_points=False))
    names = [getattr(t, "name", None) or t.__name__ for _plugin, t in registry.extra_tasks["pod"]]
    assert names == ["create", "list", "exec", "logs", "rm"]
    assert "pods" in registry.components and registry.components["pods"].steps == ()


# -- C10: the image does not match the host build ------------------------------------------------------
@pytest.mark.parametrize(("build", "edition", "options", "names"), [
    # 17763 with nanoserver:ltsc2022: the image is newer than the host
    (17763, "server", {"image": NANOSERVER}, ["17763", "nanoserver:1809"]),
    # Windows 10 20H2 with server images in process isolation: only Hyper-V works on a client
    (19042, "client", {"image": "mcr.microsoft.com/windows/nanoserver:1809", "isolation": "process"},
     ["19042", "Hyper-V"]),
    (19042, "client", {"image": "mcr.microsoft.com/windows/servercore:ltsc2019", "isolation": "process"},
     ["19042", "Hyper-V"]),
    (19042, "client", {"image": "mcr.microsoft.com/windows/servercore:ltsc2019",
                       "runtime": "runhcs-wcow-process"}, ["19042", "Hyper-V"]),
    # a Linux image on Windows
    (20348, "server", {"image": "docker.io/library/alpine"}, ["Linux image", "20348", NANOSERVER]),
])
def test_c10_image_that_cannot_run_on_the_host_is_refused_before_crictl(
        tmp_path: Path, build: int, edition: str, options: dict[str, str], names: list[str]) -> None:
    c = WindowsPodHost({}, build=build, edition=edition)
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.create, c, "web", **options)
    assert err.code == 2
    for name in names:
        assert name in err.message
    assert "\n" not in err.message  # one line
    assert c.crictl_commands == []
    assert not (tmp_path / "fs" / "C" / "ProgramData" / "dockless" / "pods").exists()


def test_c10_default_pause_image_has_no_variant_for_windows_10_20h2(tmp_path: Path) -> None:
    c = WindowsPodHost({}, build=19042, edition="client")
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.create, c, "web")
    assert err.code == 2 and "pause:3.10.2" in err.message and "19042" in err.message
    assert c.crictl_commands == []


@pytest.mark.parametrize(("build", "edition", "image", "handler"), [
    (17763, "server", "mcr.microsoft.com/windows/nanoserver:1809", "runhcs-wcow-process"),
    (20348, "server", NANOSERVER, "runhcs-wcow-process"),
    (26100, "server", "mcr.microsoft.com/windows/nanoserver:ltsc2025", "runhcs-wcow-process"),
    (22621, "client", NANOSERVER, "runhcs-wcow-hypervisor"),
    (26100, "client", "mcr.microsoft.com/windows/nanoserver:ltsc2025", "runhcs-wcow-hypervisor"),
])
def test_c10_defaults_pick_a_matching_tag_and_runtime_handler(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], build: int, edition: str, image: str,
        handler: str) -> None:
    c = WindowsPodHost({}, build=build, edition=edition)
    windows_session(tmp_path, c, conf=nat())
    pods.create(c, "web", print_specs=True)
    out, err = capsys.readouterr()
    container = json.loads(out.split("container.json\n", 1)[1])
    assert container["image"]["image"] == image
    assert f"runtime handler {handler}" in err
    assert c.crictl_commands == []


def test_c10_settings_override_that_cannot_work_is_refused(tmp_path: Path) -> None:
    c = WindowsPodHost({}, build=17763)
    windows_session(tmp_path, c, conf=nat(), sections={"pods": {"windows_image": NANOSERVER}})
    err = exits(pods.create, c, "web")
    assert err.code == 2 and "17763" in err.message and "nanoserver:ltsc2022" in err.message
    assert c.crictl_commands == []


def test_c10_image_in_a_user_container_spec_is_checked_too(tmp_path: Path) -> None:
    ctr_spec = tmp_path / "container.json"
    ctr_spec.write_text(json.dumps({"metadata": {"name": "web"}, "image": {"image": NANOSERVER},
                                    "command": ["cmd", "/c", "ping -t localhost > NUL"]}))
    c = WindowsPodHost({}, build=17763)
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.create, c, "web", container_spec=str(ctr_spec))
    assert err.code == 2 and "17763" in err.message
    assert c.crictl_commands == []


# -- C11: Linux-style specs on Windows ---------------------------------------------------------------
def test_c11_linux_style_specs_are_refused_before_crictl_runp(tmp_path: Path) -> None:
    pod_spec = tmp_path / "pod.json"
    pod_spec.write_text(json.dumps({
        "metadata": {"name": "web", "namespace": "default", "uid": "web-1"},
        "log_directory": "/tmp",
        "linux": {},
    }))
    ctr_spec = tmp_path / "container.json"
    ctr_spec.write_text(json.dumps({
        "metadata": {"name": "web"},
        "image": {"image": NANOSERVER},
        "command": ["top"],
    }))
    c = WindowsPodHost({})
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.create, c, "web", pod_spec=str(pod_spec), container_spec=str(ctr_spec))
    assert err.code == 2
    problems = err.message.splitlines()[1:]
    assert any("log_directory" in p and '"/tmp"' in p and "POSIX path" in p for p in problems), err.message
    assert any("'linux' block" in p for p in problems), err.message
    assert any('"top"' in p and "Nano Server" in p for p in problems), err.message
    assert c.crictl_commands == []


def test_c11_rendered_windows_specs_have_windows_paths_no_linux_block_and_a_nanoserver_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = WindowsPodHost({})
    windows_session(tmp_path, c, conf=nat())
    pods.create(c, "web", print_specs=True)
    out = capsys.readouterr().out
    pod_text, ctr_text = out.split("# C:\\ProgramData\\dockless\\pods\\web\\container.json\n")
    assert pod_text.startswith("# C:\\ProgramData\\dockless\\pods\\web\\pod.json\n")
    pod, ctr = json.loads(pod_text.split("\n", 1)[1]), json.loads(ctr_text)
    assert pod["log_directory"] == "C:\\ProgramData\\dockless\\pods\\web\\logs"
    assert "linux" not in pod and "linux" not in ctr
    assert ctr["command"] == ["cmd", "/c", "ping -t localhost > NUL"]  # cmd.exe and ping.exe are in Nano Server
    assert pod["metadata"] == {"name": "web", "namespace": "default", "uid": "dockless-default-web", "attempt": 1}
    assert c.crictl_commands == []


def test_user_spec_without_namespace_and_uid_is_refused(tmp_path: Path) -> None:
    pod_spec = tmp_path / "pod.json"
    pod_spec.write_text(json.dumps({"metadata": {"name": "web"}, "log_directory": "C:\\logs\\web"}))
    c = WindowsPodHost({})
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.create, c, "web", pod_spec=str(pod_spec))
    assert "metadata.namespace is missing" in err.message and "metadata.uid is missing" in err.message
    assert c.crictl_commands == []


def test_port_mapping_refused_when_the_active_cni_conf_lacks_the_capability(tmp_path: Path) -> None:
    conf = nat()
    del conf["capabilities"]
    c = WindowsPodHost({})
    windows_session(tmp_path, c, conf=conf)
    err = exits(pods.create, c, "web", port=["8080:80"])
    assert err.code == 2 and "portMappings" in err.message
    assert c.crictl_commands == []


@pytest.mark.parametrize("bad", ["80", "8080:80/icmp", "x:80", "8080:0", "1:2:3"])
def test_bad_port_option_names_the_form(tmp_path: Path, bad: str) -> None:
    c = WindowsPodHost({})
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.create, c, "web", port=[bad])
    assert err.code == 2 and bad in err.message


def test_parse_port() -> None:
    assert pods.parse_port("8080:80") == {"container_port": 80, "host_port": 8080, "protocol": 0}
    assert pods.parse_port("53:53/udp") == {"container_port": 53, "host_port": 53, "protocol": 1}


def test_windows_command_line_quoting() -> None:
    assert pods.windows_arg("runp") == "runp"
    assert pods.windows_arg("C:\\Program Files\\containerd\\bin\\crictl.exe") == \
        '"C:\\Program Files\\containerd\\bin\\crictl.exe"'
    assert pods.windows_arg("a&b") == '"a&b"'
    assert pods.windows_arg('say "hi"') == '"say \\"hi\\""'
    assert pods.windows_arg("C:\\dir\\") == "C:\\dir\\"
    assert pods.windows_arg("C:\\my dir\\") == '"C:\\my dir\\\\"'  # the closing quote stays a quote
    assert pods.windows_arg("") == '""'


# -- the full sequence on a Windows target -----------------------------------------------------------
def crictl_line(tmp_path: Path, *args: str) -> str:
    fs = tmp_path / "fs" / "C"
    exe = f'"{fs}/Program Files/containerd/bin/crictl.exe"'
    return " ".join([exe, "--config", f"{fs}/Users/Administrator/.crictl/crictl.yaml", *args])


def test_pod_create_exec_rm_on_windows_runs_exactly_these_crictl_commands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fs = tmp_path / "fs" / "C"
    state = fs / "ProgramData" / "dockless" / "pods" / "web"
    seen_at_runp: list[bool] = []

    def on_run(command: str) -> None:
        if " runp " in command:
            seen_at_runp.append((state / "logs").is_dir() and (state / "pod.json").is_file())

    c = WindowsPodHost({
        re.compile(r".* pods -o json$"): [Result(pods_json()), Result(pods_json(pod_item())),
                                          Result(pods_json(pod_item()))],
        re.compile(r".* inspecti -q "): Result(INSPECTI_JSON),
        re.compile(r".* runp "): Result(POD_ID + "\n"),
        re.compile(r".* create "): Result(CTR_ID + "\n"),
        re.compile(r".* start "): Result(CTR_ID + "\n"),
        re.compile(r".* inspectp -o json "): Result(inspectp_json("10.0.113.113")),
        re.compile(r".* ps -o json --pod "): Result(containers_json(container_item())),
        re.compile(r".* exec "): Result(IPCONFIG),
        re.compile(r".* stopp "): Result(f"Stopped sandbox {POD_ID}\n"),
        re.compile(r".* rmp -f "): Result(f"Removed sandbox {POD_ID}\n"),
    }, on_run=on_run)
    windows_session(tmp_path, c, conf=nat())

    pods.create(c, "web", port=["8080:80"], env=["GREETING=hello"], label=["app=web"])
    out = capsys.readouterr().out
    assert f"pod id:       {POD_ID}" in out
    assert f"container id: {CTR_ID}" in out
    assert "pod IP:       10.0.113.113 (network nat, 10.0.0.0/16)" in out
    assert seen_at_runp == [True]  # the specs and the Windows log directory exist before runp

    pod = json.loads((state / "pod.json").read_text())
    ctr = json.loads((state / "container.json").read_text())
    assert pod["log_directory"] == "C:\\ProgramData\\dockless\\pods\\web\\logs" and "linux" not in pod
    assert pod["port_mappings"] == [{"container_port": 80, "host_port": 8080, "protocol": 0}]
    assert pod["labels"] == ctr["labels"] == {"app": "web"}
    assert ctr["image"] == {"image": NANOSERVER} and ctr["envs"] == [{"key": "GREETING", "value": "hello"}]

    pods.exec_(c, "web", command="ipconfig")
    pods.rm(c, "web")
    out = capsys.readouterr().out
    assert f"removed pod web ({POD_ID[:13]}, namespace default) and its containers" in out
    assert not state.exists()

    pod_file, ctr_file = f"{state}/pod.json", f"{state}/container.json"
    assert c.crictl_commands == [
        crictl_line(tmp_path, "pods", "-o", "json"),
        crictl_line(tmp_path, "inspecti", "-q", NANOSERVER),
        crictl_line(tmp_path, "runp", "--runtime", "runhcs-wcow-process", pod_file),
        crictl_line(tmp_path, "create", POD_ID, ctr_file, pod_file),
        crictl_line(tmp_path, "start", CTR_ID),
        crictl_line(tmp_path, "inspectp", "-o", "json", POD_ID),
        # pod.exec
        crictl_line(tmp_path, "pods", "-o", "json"),
        crictl_line(tmp_path, "ps", "-o", "json", "--pod", POD_ID),
        crictl_line(tmp_path, "exec", CTR_ID, "cmd", "/c", "ipconfig"),
        # pod.rm
        crictl_line(tmp_path, "pods", "-o", "json"),
        crictl_line(tmp_path, "stopp", POD_ID),
        crictl_line(tmp_path, "rmp", "-f", POD_ID),
    ]
    # host facts came from one PowerShell process, before any crictl call
    assert [cmd.startswith("powershell.exe ") for cmd in c.commands].count(True) == 1
    assert c.commands[0].startswith("powershell.exe ")
    # every crictl call names dockless's crictl.yaml (never the user's default config)
    assert all(" --config " in cmd for cmd in c.crictl_commands)
    exec_call = [call for call in c.run.call_args_list if " exec " in call.args[0]][0]
    assert exec_call.kwargs["pty"] is False and exec_call.kwargs["hide"] is False


def test_hyperv_pod_on_a_client_passes_the_hypervisor_handler_to_runp(tmp_path: Path) -> None:
    c = WindowsPodHost({
        re.compile(r".* pods -o json$"): Result(pods_json()),
        re.compile(r".* inspecti -q "): Result(exited=1, stderr='time="2025-12-03T16:00:00Z" level=fatal '
                                                               f'msg="no such image \\"{NANOSERVER}\\" present"\n'),
        re.compile(r".* pull "): Result("Image is up to date for sha256:4b2d1f0e9a8c\n"),
        re.compile(r".* runp "): Result(POD_ID + "\n"),
        re.compile(r".* create "): Result(CTR_ID + "\n"),
        re.compile(r".* start "): Result(CTR_ID + "\n"),
        re.compile(r".* inspectp -o json "): Result(inspectp_json("10.0.5.7")),
    }, build=22621, edition="client")
    windows_session(tmp_path, c, conf=nat())
    pods.create(c, "web")
    state = tmp_path / "fs" / "C" / "ProgramData" / "dockless" / "pods" / "web"
    assert c.crictl_commands[1:4] == [
        crictl_line(tmp_path, "inspecti", "-q", NANOSERVER),
        crictl_line(tmp_path, "pull", NANOSERVER),
        crictl_line(tmp_path, "runp", "--runtime", "runhcs-wcow-hypervisor", f"{state}/pod.json"),
    ]


def test_interactive_exec_only_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pods, "stdin_is_tty", lambda: True)
    c = WindowsPodHost({
        re.compile(r".* pods -o json$"): Result(pods_json(pod_item())),
        re.compile(r".* ps -o json --pod "): Result(containers_json(container_item())),
        re.compile(r".* exec "): Result(""),
    })
    windows_session(tmp_path, c, conf=nat())
    pods.exec_(c, "web")
    assert c.crictl_commands[-1] == crictl_line(tmp_path, "exec", "-i", "-t", CTR_ID, "cmd")
    assert c.run.call_args_list[-1].kwargs["pty"] is True


def test_exec_without_command_and_without_terminal_is_refused(tmp_path: Path) -> None:
    c = WindowsPodHost({})
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.exec_, c, "web")
    assert err.code == 2 and "--command" in err.message
    assert c.crictl_commands == []


def test_create_refuses_a_pod_that_exists(tmp_path: Path) -> None:
    c = WindowsPodHost({re.compile(r".* pods -o json$"): Result(pods_json(pod_item()))})
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.create, c, "web")
    assert "already exists" in err.message and "pod.rm web" in err.message
    assert c.crictl_commands == [crictl_line(tmp_path, "pods", "-o", "json")]


def test_failed_create_removes_the_half_made_pod(tmp_path: Path) -> None:
    fatal = ('time="2025-12-03T16:00:01Z" level=fatal msg="creating container: rpc error: code = Unknown '
             'desc = failed to create containerd container: hcs::CreateComputeSystem web: The container '
             'operating system does not match the host operating system."\n')
    c = WindowsPodHost({
        re.compile(r".* pods -o json$"): Result(pods_json()),
        re.compile(r".* inspecti -q "): Result(INSPECTI_JSON),
        re.compile(r".* runp "): Result(POD_ID + "\n"),
        re.compile(r".* create "): Result(stderr=fatal, exited=1),
        re.compile(r".* rmp -f "): Result(f"Stopped sandbox {POD_ID}\nRemoved sandbox {POD_ID}\n"),
    })
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.create, c, "web")
    assert err.code == 1
    assert "does not match the host operating system" in err.message and "level=fatal" not in err.message
    assert "removed the half-made pod" in err.message
    assert c.crictl_commands[-1] == crictl_line(tmp_path, "rmp", "-f", POD_ID)


def test_missing_crictl_points_at_setup(tmp_path: Path) -> None:
    c = WindowsPodHost({})
    windows_session(tmp_path, c, conf=nat(), installed=False)
    err = exits(pods.create, c, "web")
    assert "crictl.exe is missing" in err.message and "invoke setup" in err.message
    assert c.crictl_commands == []


def test_rm_of_an_unknown_pod_says_so(tmp_path: Path) -> None:
    c = WindowsPodHost({re.compile(r".* pods -o json$"): Result(pods_json())})
    windows_session(tmp_path, c, conf=nat())
    err = exits(pods.rm, c, "nope")
    assert err.code == 1 and "no pod named 'nope'" in err.message


def test_pod_list_prints_pods_and_their_containers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = WindowsPodHost({
        re.compile(r".* pods -o json$"): Result(pods_json(pod_item())),
        re.compile(r".* ps -a -o json$"): Result(containers_json(container_item())),
    })
    windows_session(tmp_path, c, conf=nat())
    pods.list_(c)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["POD", "ID", "NAME", "NAMESPACE", "STATE", "CONTAINERS"]
    assert lines[1].split() == [POD_ID[:13], "web", "default", "ready", "web:running"]


def test_linux_specs_have_posix_paths_a_linux_block_and_sleep(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings({"DOCKLESS_TARGET": "linux", "DOCKLESS_ROOT": str(tmp_path / "root")}, cwd=tmp_path)
    c = MockContext(run={})
    bind_session(c, Session(c, settings, collect(plugin_manager(entry_points=False))))
    pods.create(c, "web", print_specs=True)
    out = capsys.readouterr().out
    pod_text, ctr_text = out.split("container.json\n")
    pod, ctr = json.loads(pod_text.split("\n", 1)[1].rsplit("#", 1)[0]), json.loads(ctr_text)
    assert pod["log_directory"] == f"{tmp_path}/root/var/lib/dockless/pods/web/logs"
    assert pod["linux"] == {} and ctr["linux"] == {}
    assert ctr["command"] == ["sleep", "3600"] and ctr["image"]["image"] == "docker.io/library/busybox:latest"
    err = exits(pods.create, c, "web", image=NANOSERVER)
    assert err.code == 2 and "Windows image" in err.message


# -- the Linux lane, end to end (needs a real crictl) -------------------------------------------------
CRICTL = os.environ.get("DOCKLESS_CRICTL") or shutil.which("crictl")
LINUX_NEEDS = {"/usr/bin/containerd": "containerd", "/usr/sbin/runc": "runc",
               "/usr/lib/cni/bridge": "containernetworking-plugins", "/bin/busybox": "busybox-static"}
_linux_missing = sorted({pkg for path, pkg in LINUX_NEEDS.items() if not Path(path).exists()})
REPO = Path(__file__).resolve().parent.parent
E2E_IMAGE = "docker.io/library/busybox:dockless"
E2E_PAUSE = "docker.io/library/busybox:dockless-pause"  # sleeps: a pod sandbox must keep running


def _run_invoke(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env, capture_output=True,
                          stdin=subprocess.DEVNULL, text=True, timeout=600)
    assert proc.returncode == 0, f"invoke {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _crictl_json(root: Path, *args: str) -> Any:
    proc = subprocess.run([str(root / "usr" / "local" / "bin" / "crictl"), "--config",
                           str(root / "etc" / "crictl.yaml"), *args, "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _stop_under(root: Path) -> None:
    """Stop containerd and shims whose command line names ``root`` (and nothing else), unmount
    what is mounted under it and delete it."""
    marker = str(root).encode()

    def ours() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            except OSError:
                continue
            if args and args[0].split(b"/")[-1].startswith(b"containerd") and any(marker in a for a in args):
                pids.append(int(entry.name))
        return pids

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while ours() and time.monotonic() < deadline:
            time.sleep(0.1)
    mounts = [ln.split()[1] for ln in Path("/proc/self/mounts").read_text().splitlines()]
    for mnt in sorted((m for m in mounts if m.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def linux_lane_with_crictl(linux_mirror_server: Any, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    if linux_mirror_server.crictl is None:
        pytest.skip("the release mirror has no crictl")
    from dockless.testing.images import busybox_oci

    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="dlp"))  # unix socket paths stay < 108 bytes
    config = tmp_path / "dockless.toml"
    config.write_text(
        "[versions]\n" + "".join(f'{k} = "{v}"\n' for k, v in linux_mirror_server.versions.items())
        + f'\n[containerd]\nsandbox_image = "{E2E_PAUSE}"\n\n[pods]\nlinux_image = "{E2E_IMAGE}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    env.update({"DOCKLESS_TARGET": "linux", "DOCKLESS_ROOT": str(root), "DOCKLESS_MIRROR": linux_mirror_server.url,
                "DOCKLESS_SERVICE": "process", "DOCKLESS_CACHE": str(tmp_path / "cache"),
                "DOCKLESS_CONFIG": str(config),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    bridge_existed = Path("/sys/class/net/dockless0").exists()
    try:
        _run_invoke(env, "setup")
        _run_invoke(env, "image.import", str(busybox_oci(tmp_path / "pause.tar", ref=E2E_PAUSE,
                                                         cmd=["/bin/sleep", "86400"])))
        _run_invoke(env, "image.import", str(busybox_oci(tmp_path / "busybox.tar", ref=E2E_IMAGE)))
        yield root, env
    finally:
        _stop_under(root)
        if not bridge_existed and Path("/sys/class/net/dockless0").exists():
            subprocess.run(["ip", "link", "delete", "dockless0"], capture_output=True)


@pytest.mark.crictl
@pytest.mark.linux_lane
@pytest.mark.skipif(CRICTL is None, reason="needs a crictl binary on PATH or at DOCKLESS_CRICTL "
                                           "(no registry here ships crictl)")
@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="starts containerd: needs Linux and root")
@pytest.mark.skipif(bool(_linux_missing), reason=f"needs Debian packages: {' '.join(_linux_missing)}")
def test_linux_pod_create_exec_rm_with_real_crictl(linux_lane_with_crictl: tuple[Path, dict[str, str]]) -> None:
    root, env = linux_lane_with_crictl
    created = _run_invoke(env, "pod.create", "e2e")
    ids = dict(re.findall(r"^\s+(pod id|container id|pod IP):\s+(\S+)", created.stdout, re.MULTILINE))
    assert set(ids) == {"pod id", "container id", "pod IP"}, created.stdout + created.stderr
    assert ipaddress.ip_address(ids["pod IP"]) in ipaddress.ip_network("10.88.0.0/16")
    running = _crictl_json(root, "ps", "--pod", ids["pod id"])["containers"]
    assert [(c["id"], c["state"]) for c in running] == [(ids["container id"], "CONTAINER_RUNNING")]
    assert (root / "var" / "lib" / "dockless" / "pods" / "e2e" / "pod.json").is_file()

    execd = _run_invoke(env, "pod.exec", "e2e", "--command", "echo hello-from-$(hostname)")
    assert "hello-from-e2e" in execd.stdout
    listed = _run_invoke(env, "pod.list")
    assert "e2e" in listed.stdout and "running" in listed.stdout

    _run_invoke(env, "pod.rm", "e2e")
    assert _crictl_json(root, "pods")["items"] == []
    assert _crictl_json(root, "ps", "-a")["containers"] == []
    assert not (root / "var" / "lib" / "dockless" / "pods" / "e2e").exists()
