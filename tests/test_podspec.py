"""CRI pod/container spec validation before crictl sees the files."""
from __future__ import annotations

import pytest

from dockless.podspec import (
    CONTAINER_FIELDS,
    POD_FIELDS,
    SpecError,
    container_problems,
    pod_problems,
    validate_container,
    validate_pod,
)

WIN_POD = {
    "metadata": {"name": "web", "namespace": "default", "uid": "web-1", "attempt": 0},
    "hostname": "web",
    "log_directory": "C:\\ProgramData\\dockless\\logs\\web",
    "port_mappings": [{"protocol": 0, "container_port": 80, "host_port": 8080}],
    "windows": {"security_context": {"run_as_username": "ContainerUser"}},
}
WIN_CONTAINER = {
    "metadata": {"name": "app"},
    "image": {"image": "mcr.microsoft.com/windows/nanoserver:ltsc2022"},
    "command": ["cmd", "/c", "ping -t localhost > NUL"],
    "working_dir": "C:\\app",
    "envs": [{"key": "FOO", "value": "bar"}],
    "mounts": [{"container_path": "C:\\data", "host_path": "C:\\ProgramData\\dockless\\data"}],
    "log_path": "app.log",
}
LINUX_POD = {
    "metadata": {"name": "web", "namespace": "default", "uid": "web-1"},
    "log_directory": "/tmp",
    "linux": {},
}
LINUX_CONTAINER = {
    "metadata": {"name": "app"},
    "image": {"image": "docker.io/library/busybox:1.36"},
    "command": ["top"],
    "working_dir": "/",
    "mounts": [{"container_path": "/data", "host_path": "/srv/data"}],
    "log_path": "app.log",
}


def _raise(fn, spec, target, **kw) -> SpecError:
    with pytest.raises(SpecError) as exc:
        fn(spec, target, **kw)
    err = exc.value
    assert str(err).splitlines() == err.problems  # one line per problem
    return err


# ---------------------------------------------------------------- field case C11


def test_c11_linux_style_pod_on_windows():
    err = _raise(validate_pod, {"metadata": {"name": "p"}, "log_directory": "/tmp", "linux": {}},
                 "windows")
    assert len(err.problems) == 2
    linux = next(p for p in err.problems if "'linux'" in p)
    posix = next(p for p in err.problems if "log_directory" in p)
    assert linux.startswith("pod.json: ") and "remove it" in linux
    assert posix.startswith("pod.json: ") and '"/tmp"' in posix and "POSIX" in posix
    assert "C:\\\\" in posix  # the fix, as written in JSON


def test_c11_container_running_top_on_windows():
    spec = {"metadata": {"name": "c"},
            "image": {"image": "mcr.microsoft.com/windows/nanoserver:ltsc2022"},
            "command": ["top"]}
    err = _raise(validate_container, spec, "windows")
    assert len(err.problems) == 1
    (line,) = err.problems
    assert line.startswith("container.json: command:")
    assert '"top"' in line and "Nano Server" in line and '"cmd"' in line


@pytest.mark.parametrize("command", [["sh", "-c", "echo hi"], ["bash"], ["sleep", "3600"],
                                     ["/bin/sleep", "3600"], ["tail", "-f", "/dev/null"]])
def test_c11_other_linux_commands(command):
    spec = dict(WIN_CONTAINER, command=command)
    err = _raise(validate_container, spec, "windows")
    assert any("command" in p for p in err.problems)


def test_c11_args_replacing_cmd_are_checked():
    spec = {k: v for k, v in WIN_CONTAINER.items() if k != "command"}
    spec["args"] = ["sleep", "10"]
    err = _raise(validate_container, spec, "windows")
    assert err.problems[0].startswith("container.json: args:")


def test_c11_full_linux_spec_on_windows_reports_every_problem():
    pod = _raise(validate_pod, LINUX_POD, "windows", source="C:\\specs\\pod.json")
    assert all(p.startswith("C:\\specs\\pod.json: ") for p in pod.problems)
    ctr = _raise(validate_container, LINUX_CONTAINER, "windows")
    text = str(ctr)
    for field in ("command", "working_dir", "mounts[0].container_path", "mounts[0].host_path"):
        assert f"container.json: {field}:" in text


def test_c11_windows_specs_pass():
    validate_pod(WIN_POD, "windows")
    validate_container(WIN_CONTAINER, "windows")
    assert pod_problems(WIN_POD, "windows") == []
    assert container_problems(WIN_CONTAINER, "windows") == []


def test_powershell_not_in_nanoserver():
    spec = dict(WIN_CONTAINER, command=["powershell", "-c", "Get-Date"])
    err = _raise(validate_container, spec, "windows")
    assert "PowerShell" in err.problems[0]
    core = dict(spec, image={"image": "mcr.microsoft.com/windows/servercore:ltsc2022"})
    validate_container(core, "windows")


# ---------------------------------------------------------------- unknown fields


@pytest.mark.parametrize("typo,suggestion", [
    ("log_dirctory", "log_directory"),
    ("logDirectory", "log_directory"),
    ("portMappings", "port_mappings"),
    ("ports", "port_mappings"),
    ("hostnme", "hostname"),
    ("dns", "dns_config"),
    ("annotation", "annotations"),
])
def test_pod_typo_suggests_field(typo, suggestion):
    spec = dict(WIN_POD)
    spec[typo] = spec.pop(suggestion, "x")
    err = _raise(validate_pod, spec, "windows")
    line = next(p for p in err.problems if repr(typo) in p)
    assert line.startswith("pod.json: ")
    assert "silently ignore" in line
    assert f"did you mean {suggestion!r}" in line


@pytest.mark.parametrize("typo,suggestion", [
    ("working_directory", "working_dir"),
    ("workingDir", "working_dir"),
    ("env", "envs"),
    ("comand", "command"),
    ("logPath", "log_path"),
    ("volumes", "mounts"),
])
def test_container_typo_suggests_field(typo, suggestion):
    spec = dict(WIN_CONTAINER)
    spec[typo] = spec.pop(suggestion, ["cmd"])
    err = _raise(validate_container, spec, "windows")
    line = next(p for p in err.problems if repr(typo) in p)
    assert line.startswith("container.json: ") and f"did you mean {suggestion!r}" in line


def test_unknown_metadata_field():
    spec = dict(WIN_POD, metadata={"nmae": "web", "namespace": "default"})
    err = _raise(validate_pod, spec, "windows")
    assert any("'metadata.nmae'" in p and "did you mean 'name'" in p for p in err.problems)
    assert any("metadata.name is missing" in p for p in err.problems)


def test_unknown_nested_fields():
    spec = dict(WIN_CONTAINER, mounts=[{"containerPath": "C:\\data", "host_path": "C:\\x"}])
    err = _raise(validate_container, spec, "windows")
    assert "'mounts[0].containerPath'" in err.problems[0]
    assert "did you mean 'container_path'" in err.problems[0]


def test_unknown_field_without_suggestion_lists_known():
    spec = dict(WIN_POD, zzzz=1)
    err = _raise(validate_pod, spec, "windows")
    assert "remove it" in err.problems[0] and "log_directory" in err.problems[0]


def test_case_insensitive_names_are_accepted_like_crictl():
    spec = dict(WIN_POD)
    spec["Log_Directory"] = spec.pop("log_directory")
    assert pod_problems(spec, "windows") == []
    ctr = dict(WIN_CONTAINER, cdi_devices=[{"name": "vendor.com/gpu=0"}])
    assert container_problems(ctr, "windows") == []


def test_missing_names():
    err = _raise(validate_pod, {"log_directory": "C:\\logs"}, "windows")
    assert err.problems == [p for p in err.problems if "metadata.name is missing" in p]
    ctr = {"image": {"image": "x"}, "metadata": {"name": ""}}
    err = _raise(validate_container, ctr, "windows")
    assert "container.json: metadata.name is missing" in str(err)


def test_shape_mistakes():
    spec = dict(WIN_CONTAINER, image="mcr.microsoft.com/windows/nanoserver:ltsc2022",
                envs={"FOO": "bar"})
    err = _raise(validate_container, spec, "windows")
    assert any(p.startswith("container.json: image is a string") for p in err.problems)
    assert any(p.startswith("container.json: envs is an object") for p in err.problems)
    err = _raise(validate_pod, dict(WIN_POD, metadata="web"), "windows")
    assert "metadata is a string" in err.problems[0]
    err = _raise(validate_pod, [], "windows")  # type: ignore[arg-type]
    assert "JSON object" in err.problems[0]


def test_field_lists_follow_cri_api():
    assert set(POD_FIELDS) == {"metadata", "hostname", "log_directory", "dns_config",
                               "port_mappings", "labels", "annotations", "linux", "windows"}
    for name in ("metadata", "image", "command", "args", "working_dir", "envs", "mounts",
                 "devices", "labels", "annotations", "log_path", "stdin", "stdin_once", "tty",
                 "linux", "windows", "CDI_devices"):
        assert name in CONTAINER_FIELDS


# ---------------------------------------------------------------- Linux target


def test_linux_target_rejects_windows_paths():
    pod = {"metadata": {"name": "p"}, "log_directory": "C:\\logs\\p", "windows": {}}
    err = _raise(validate_pod, pod, "linux")
    text = str(err)
    assert "'windows' block on a Linux target" in text
    assert "log_directory" in text and "Windows path" in text and "/var/log/pods" in text
    ctr = dict(LINUX_CONTAINER, working_dir="C:\\app",
               mounts=[{"container_path": "C:\\data", "host_path": "\\\\server\\share"}])
    err = _raise(validate_container, ctr, "linux")
    text = str(err)
    for field in ("working_dir", "mounts[0].container_path", "mounts[0].host_path"):
        assert f"container.json: {field}:" in text


def test_linux_target_rejects_windows_commands():
    err = _raise(validate_container, dict(LINUX_CONTAINER, command=["cmd", "/c", "dir"]), "linux")
    assert "Windows program" in err.problems[0]


def test_linux_specs_pass_on_linux():
    validate_pod(LINUX_POD, "linux")
    validate_container(LINUX_CONTAINER, "linux")


def test_absolute_log_path_refused():
    err = _raise(validate_container, dict(LINUX_CONTAINER, log_path="/var/log/app.log"), "linux")
    assert "log_path" in err.problems[0] and "relative" in err.problems[0]


# ---------------------------------------------------------------- port mappings


def test_port_mappings_without_capability():
    err = _raise(validate_pod, WIN_POD, "windows", port_mappings_supported=False)
    assert len(err.problems) == 1
    line = err.problems[0]
    assert line.startswith("pod.json: port_mappings:")
    assert "portMappings" in line and "CNI conf" in line


def test_port_mappings_with_capability_or_absent():
    validate_pod(WIN_POD, "windows", port_mappings_supported=True)
    no_ports = {k: v for k, v in WIN_POD.items() if k != "port_mappings"}
    validate_pod(no_ports, "windows", port_mappings_supported=False)
    validate_pod(dict(WIN_POD, port_mappings=[]), "windows", port_mappings_supported=False)


def test_bad_port_numbers():
    spec = dict(WIN_POD, port_mappings=[{"container_port": 70000, "host_port": "80"}])
    err = _raise(validate_pod, spec, "windows")
    assert any("container_port" in p and "70000" in p for p in err.problems)
    assert any("host_port" in p for p in err.problems)


def test_bad_target():
    with pytest.raises(ValueError):
        validate_pod(WIN_POD, "macos")  # type: ignore[arg-type]
