"""Validation of CRI pod and container specs (the JSON files given to crictl).

``crictl runp pod.json`` and ``crictl create <pod> container.json pod.json`` decode
the files into the CRI ``PodSandboxConfig`` / ``ContainerConfig`` Go structs, whose
JSON names are the protobuf field names in snake_case (``log_directory``,
``port_mappings``, ``working_dir`` ...).  Go's decoder matches names without regard
to case and silently drops names it does not know, so a typo or a camelCase name
(``logDirectory``) just vanishes.  A Linux-style spec on Windows fails much later,
inside containerd or the container.  This module catches both before crictl runs.

Field lists follow ``k8s.io/cri-api`` ``pkg/apis/runtime/v1/api.proto``.
"""
from __future__ import annotations

import difflib
import json
import re
from typing import Any, Literal, Mapping, Union

__all__ = [
    "CONTAINER_FIELDS",
    "LINUX_ONLY_COMMANDS",
    "POD_FIELDS",
    "SpecError",
    "Target",
    "container_problems",
    "pod_problems",
    "validate_container",
    "validate_pod",
]

Target = Literal["windows", "linux"]

# A schema maps field name -> None (a value not looked into: scalars, string
# maps, the large linux blocks), a nested schema (an object), or a one-element
# list holding a schema (a list of objects).
Schema = dict[str, Union[None, "Schema", list]]

_POD_METADATA: Schema = {"name": None, "uid": None, "namespace": None, "attempt": None}
_CONTAINER_METADATA: Schema = {"name": None, "attempt": None}
_DNS_CONFIG: Schema = {"servers": None, "searches": None, "options": None}
_PORT_MAPPING: Schema = {"protocol": None, "container_port": None, "host_port": None, "host_ip": None}
_IMAGE_SPEC: Schema = {
    "image": None, "annotations": None, "user_specified_image": None, "runtime_handler": None,
}
_KEY_VALUE: Schema = {"key": None, "value": None}
_MOUNT: Schema = {
    "container_path": None, "host_path": None, "readonly": None, "selinux_relabel": None,
    "propagation": None, "uidMappings": None, "gidMappings": None,
    "recursive_read_only": None, "image": None,
}
_DEVICE: Schema = {"container_path": None, "host_path": None, "permissions": None}
_CDI_DEVICE: Schema = {"name": None}
_WINDOWS_POD: Schema = {
    "security_context": {
        "run_as_username": None, "credential_spec": None, "host_process": None,
        "namespace_options": {"network": None},
    },
}
_WINDOWS_CONTAINER: Schema = {
    "resources": {
        "cpu_shares": None, "cpu_count": None, "cpu_maximum": None,
        "memory_limit_in_bytes": None, "rootfs_size_in_bytes": None, "affinity_cpus": None,
    },
    "security_context": {"run_as_username": None, "credential_spec": None, "host_process": None},
}

#: ``PodSandboxConfig`` fields as crictl reads them.
POD_FIELDS: Schema = {
    "metadata": _POD_METADATA,
    "hostname": None,
    "log_directory": None,
    "dns_config": _DNS_CONFIG,
    "port_mappings": [_PORT_MAPPING],
    "labels": None,
    "annotations": None,
    "linux": None,
    "windows": _WINDOWS_POD,
}

#: ``ContainerConfig`` fields as crictl reads them (``CDI_devices`` is the proto
#: name; Go's case-insensitive matching also takes ``cdi_devices``; ``stop_signal``
#: is in CRI since Kubernetes 1.33).
CONTAINER_FIELDS: Schema = {
    "metadata": _CONTAINER_METADATA,
    "image": _IMAGE_SPEC,
    "command": None,
    "args": None,
    "working_dir": None,
    "envs": [_KEY_VALUE],
    "mounts": [_MOUNT],
    "devices": [_DEVICE],
    "labels": None,
    "annotations": None,
    "log_path": None,
    "stdin": None,
    "stdin_once": None,
    "tty": None,
    "linux": None,
    "windows": _WINDOWS_CONTAINER,
    "CDI_devices": [_CDI_DEVICE],
    "stop_signal": None,
}

# Names people reach for that difflib would not map well.
_ALIASES: dict[str, str] = {
    "ports": "port_mappings",
    "portmappings": "port_mappings",
    "dns": "dns_config",
    "logdir": "log_directory",
    "log_dir": "log_directory",
    "env": "envs",
    "environment": "envs",
    "cmd": "command",
    "entrypoint": "command",
    "workdir": "working_dir",
    "cwd": "working_dir",
    "volumes": "mounts",
    "volumemounts": "mounts",
    "logfile": "log_path",
}

#: Commands that exist in Linux images but not in Windows Nano Server (or Server
#: Core), with a Windows replacement to suggest.
LINUX_ONLY_COMMANDS: dict[str, str] = {
    "sh": '["cmd", "/c", "..."]',
    "bash": '["cmd", "/c", "..."]',
    "ash": '["cmd", "/c", "..."]',
    "zsh": '["cmd", "/c", "..."]',
    "dash": '["cmd", "/c", "..."]',
    "busybox": '["cmd", "/c", "..."]',
    "top": '["cmd", "/c", "tasklist"]',
    "ps": '["cmd", "/c", "tasklist"]',
    "sleep": '["cmd", "/c", "ping -t localhost > NUL"] to keep the container running',
    "tail": '["cmd", "/c", "ping -t localhost > NUL"] to keep the container running',
    "ls": '["cmd", "/c", "dir"]',
    "cat": '["cmd", "/c", "type FILE"]',
    "echo": '["cmd", "/c", "echo ..."] (echo is built into cmd, not a program)',
    "env": '["cmd", "/c", "set"]',
    "true": '["cmd", "/c", "exit 0"]',
    "false": '["cmd", "/c", "exit 1"]',
    "grep": '["cmd", "/c", "findstr ..."]',
    "sed": '["cmd", "/c", "..."]',
    "awk": '["cmd", "/c", "..."]',
    "wget": '["curl.exe", ...]',
}
_WINDOWS_ONLY_COMMANDS = {"cmd", "cmd.exe", "powershell", "powershell.exe", "ping.exe", "tasklist"}

_WIN_LOG_EXAMPLE = "C:\\ProgramData\\dockless\\logs\\web"
_WIN_DRIVE = re.compile(r"^[A-Za-z]:([\\/]|$)")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


class SpecError(ValueError):
    """A pod or container spec that crictl would mishandle.

    ``problems`` holds one line per problem, each naming the file and field and
    the fix; ``str()`` joins them with newlines.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _q(value: Any) -> str:
    """A value as it is written in the JSON file (Windows backslashes doubled)."""
    return json.dumps(value)


def _is_windows_path(value: str) -> bool:
    return bool(_WIN_DRIVE.match(value)) or value.startswith("\\\\")


def _is_posix_path(value: str) -> bool:
    return value.startswith("/") or value.startswith("~/")


def _suggest(key: str, fields: Mapping[str, Any]) -> str | None:
    """The field ``key`` was probably meant to be, or ``None``."""
    names = list(fields)
    lower = {n.lower(): n for n in names}
    snake = _CAMEL.sub(r"_\1", key).lower()
    if snake in lower:
        return lower[snake]
    squashed = key.replace("_", "").replace("-", "").lower()
    for candidate in (key.lower(), squashed, snake):
        if candidate in _ALIASES and _ALIASES[candidate] in fields:
            return _ALIASES[candidate]
    for n in names:
        if n.replace("_", "").lower() == squashed:
            return n
    close = difflib.get_close_matches(snake, [n.lower() for n in names], n=1, cutoff=0.6)
    return lower[close[0]] if close else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return "an object"


def _walk(obj: Any, schema: Schema, path: str, source: str, message: str,
          problems: list[str]) -> None:
    """Report unknown fields (with a suggestion) and object/list shape errors."""
    if not isinstance(obj, dict):
        where = path or "the top level"
        problems.append(f"{source}: {where} is {_kind(obj)}; it must be a JSON object ({message})")
        return
    known = {k.lower(): k for k in schema}
    for key, value in obj.items():
        field = known.get(str(key).lower())
        dotted = f"{path}.{key}" if path else str(key)
        if field is None:
            hint = _suggest(str(key), schema)
            fix = f"did you mean {hint!r}?" if hint else f"remove it (known: {', '.join(schema)})"
            owner = f"a {message}" if not path else f"a known {path.split('[')[0]}"
            problems.append(
                f"{source}: {dotted!r} is not {owner} field, crictl would silently "
                f"ignore it; {fix}")
            continue
        sub = schema[field]
        if value is None or sub is None:
            continue
        if isinstance(sub, list):
            if not isinstance(value, list):
                problems.append(f"{source}: {dotted} is {_kind(value)}; it must be a list of objects")
                continue
            for i, item in enumerate(value):
                _walk(item, sub[0], f"{dotted}[{i}]", source, message, problems)
        else:
            _walk(value, sub, dotted, source, message, problems)


def _metadata_name(spec: Mapping[str, Any], source: str, what: str, example: str,
                   problems: list[str]) -> None:
    meta = _get(spec, "metadata")
    if meta is not None and not isinstance(meta, dict):
        return  # shape already reported
    name = _get(meta or {}, "name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{source}: metadata.name is missing; crictl needs the {what} name, "
                        f"e.g. \"metadata\": {example}")


def _get(obj: Mapping[str, Any], field: str) -> Any:
    """Field value with Go's case-insensitive matching (exact name first)."""
    if field in obj:
        return obj[field]
    low = field.lower()
    for k, v in obj.items():
        if str(k).lower() == low:
            return v
    return None


def _path_problem(source: str, field: str, value: Any, target: Target, fix_example: str,
                  problems: list[str]) -> None:
    if not isinstance(value, str) or not value:
        return
    if target == "windows" and _is_posix_path(value):
        problems.append(f"{source}: {field}: {_q(value)} is a POSIX path on a Windows target; "
                        f"use a Windows path such as {_q(fix_example)}")
    elif target == "linux" and _is_windows_path(value):
        problems.append(f"{source}: {field}: {_q(value)} is a Windows path on a Linux target; "
                        f"use a POSIX path such as {_q(fix_example)}")


def _platform_block(spec: Mapping[str, Any], source: str, target: Target, kind: str,
                    problems: list[str]) -> None:
    wrong = "linux" if target == "windows" else "windows"
    if _get(spec, wrong) is not None:
        right = "windows" if target == "windows" else "linux"
        problems.append(
            f"{source}: {wrong!r} block on a {target.capitalize()} target; remove it "
            f"({target.capitalize()} {kind} take only an optional {right!r} block)")


# --------------------------------------------------------------------------
# pod
# --------------------------------------------------------------------------


def pod_problems(
    spec: Any,
    target: Target,
    *,
    source: str = "pod.json",
    port_mappings_supported: bool = True,
) -> list[str]:
    """Problems with a ``PodSandboxConfig`` for ``target``; empty when it is fine."""
    _check_target(target)
    problems: list[str] = []
    _walk(spec, POD_FIELDS, "", source, "PodSandboxConfig", problems)
    if not isinstance(spec, dict):
        return problems
    _metadata_name(spec, source, "pod",
                   '{"name": "web", "namespace": "default", "uid": "web-1"}', problems)
    _platform_block(spec, source, target, "pods", problems)

    log_dir = _get(spec, "log_directory")
    if target == "windows":
        _path_problem(source, "log_directory", log_dir, target, _WIN_LOG_EXAMPLE, problems)
        if (isinstance(log_dir, str) and log_dir and not _is_posix_path(log_dir)
                and not _is_windows_path(log_dir)):
            problems.append(f"{source}: log_directory: {_q(log_dir)} is relative; use an absolute "
                            f"path such as {_q(_WIN_LOG_EXAMPLE)}")
    else:
        _path_problem(source, "log_directory", log_dir, target, "/var/log/pods/web", problems)

    ports = _get(spec, "port_mappings")
    if isinstance(ports, list) and ports and not port_mappings_supported:
        problems.append(
            f"{source}: port_mappings: the CNI conf lacks the portMappings capability, so the "
            f"mappings would be dropped silently; add \"capabilities\": {{\"portMappings\": true}} "
            f"to the CNI conf (re-render it with dockless) or remove port_mappings")
    if isinstance(ports, list):
        for i, pm in enumerate(ports):
            if isinstance(pm, dict):
                _port_problem(source, i, pm, problems)
    return problems


def _port_problem(source: str, i: int, pm: Mapping[str, Any], problems: list[str]) -> None:
    for field, low in (("container_port", 1), ("host_port", 0)):
        value = _get(pm, field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
            problems.append(f"{source}: port_mappings[{i}].{field}: {value!r} is not a port "
                            f"number; use an integer from {low} to 65535")
    if _get(pm, "container_port") in (None, 0):
        problems.append(f"{source}: port_mappings[{i}].container_port is missing; set the "
                        f"port the container listens on, e.g. \"container_port\": 80")


def validate_pod(
    spec: dict,
    target: Target,
    *,
    source: str = "pod.json",
    port_mappings_supported: bool = True,
) -> None:
    """Raise :class:`SpecError` listing every problem of a pod spec for ``target``
    (unknown fields, missing ``metadata.name``, the other OS's block, paths of the
    other OS, port mappings the CNI conf would drop)."""
    problems = pod_problems(spec, target, source=source,
                            port_mappings_supported=port_mappings_supported)
    if problems:
        raise SpecError(problems)


# --------------------------------------------------------------------------
# container
# --------------------------------------------------------------------------


def container_problems(spec: Any, target: Target, *, source: str = "container.json") -> list[str]:
    """Problems with a ``ContainerConfig`` for ``target``; empty when it is fine."""
    _check_target(target)
    problems: list[str] = []
    if isinstance(spec, dict):
        spec = _reshape_common_mistakes(spec, source, problems)
    _walk(spec, CONTAINER_FIELDS, "", source, "ContainerConfig", problems)
    if not isinstance(spec, dict):
        return problems
    _metadata_name(spec, source, "container", '{"name": "app"}', problems)
    image = _get(spec, "image")
    ref = _get(image, "image") if isinstance(image, dict) else None
    if image is not None and isinstance(image, dict) and not ref:
        problems.append(f"{source}: image.image is missing; name the image, e.g. "
                        f"\"image\": {{\"image\": \"mcr.microsoft.com/windows/nanoserver:ltsc2022\"}}")
    _platform_block(spec, source, target, "containers", problems)

    win = target == "windows"
    _path_problem(source, "working_dir", _get(spec, "working_dir"), target,
                  "C:\\app" if win else "/app", problems)
    log_path = _get(spec, "log_path")
    if isinstance(log_path, str) and (_is_posix_path(log_path) or _is_windows_path(log_path)):
        problems.append(f"{source}: log_path: {_q(log_path)} is absolute; it is relative to the "
                        f"pod's log_directory, e.g. \"app.log\"")
    mounts = _get(spec, "mounts")
    if isinstance(mounts, list):
        for i, m in enumerate(mounts):
            if not isinstance(m, dict):
                continue
            _path_problem(source, f"mounts[{i}].container_path", _get(m, "container_path"),
                          target, "C:\\data" if win else "/data", problems)
            _path_problem(source, f"mounts[{i}].host_path", _get(m, "host_path"),
                          target, "C:\\ProgramData\\dockless\\data" if win else "/srv/data",
                          problems)
    _command_problems(spec, target, source, str(ref or ""), problems)
    return problems


def _reshape_common_mistakes(spec: dict, source: str, problems: list[str]) -> dict:
    """Report ``"image": "ref"`` and ``"envs": {"K": "V"}`` with the right shape, and
    return the spec without them so they are not reported twice."""
    drop: set[str] = set()
    image = _get(spec, "image")
    if isinstance(image, str):
        problems.append(f"{source}: image is a string; crictl expects an object: "
                        f"\"image\": {{\"image\": \"{image}\"}}")
        drop.add("image")
    envs = _get(spec, "envs")
    if isinstance(envs, dict):
        problems.append(f"{source}: envs is an object; crictl expects a list of "
                        f"{{\"key\": ..., \"value\": ...}} objects, e.g. "
                        f"\"envs\": [{{\"key\": \"FOO\", \"value\": \"bar\"}}]")
        drop.add("envs")
    if not drop:
        return spec
    return {k: v for k, v in spec.items() if str(k).lower() not in drop}


def _command_problems(spec: Mapping[str, Any], target: Target, source: str, image: str,
                      problems: list[str]) -> None:
    command = _get(spec, "command")
    field = "command"
    if not command:
        command, field = _get(spec, "args"), "args"  # args replace the image's CMD
    if not command:
        return
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        problems.append(f"{source}: {field} must be a list of strings, e.g. "
                        f"[\"cmd\", \"/c\", \"echo hello\"]")
        return
    exe = command[0]
    base = re.split(r"[\\/]", exe)[-1].lower()
    if target == "windows":
        if base in LINUX_ONLY_COMMANDS:
            problems.append(f"{source}: {field}: {_q(exe)} does not exist in Windows Nano Server; "
                            f"use a Windows command such as {LINUX_ONLY_COMMANDS[base]}")
        elif _is_posix_path(exe):
            problems.append(f"{source}: {field}: {_q(exe)} is a POSIX path on a Windows target; "
                            f"use a Windows program such as [\"cmd\", \"/c\", \"...\"]")
        elif base in ("powershell", "powershell.exe") and "nanoserver" in image.lower():
            problems.append(f"{source}: {field}: Nano Server has no Windows PowerShell; use "
                            f"[\"cmd\", \"/c\", \"...\"] or a servercore image")
    else:
        if base in _WINDOWS_ONLY_COMMANDS or base.endswith(".exe") or _is_windows_path(exe):
            problems.append(f"{source}: {field}: {_q(exe)} is a Windows program on a Linux target; "
                            f"use a Linux command such as [\"sh\", \"-c\", \"...\"]")


def validate_container(spec: dict, target: Target, *, source: str = "container.json") -> None:
    """Raise :class:`SpecError` listing every problem of a container spec for
    ``target`` (unknown fields, missing ``metadata.name``/``image.image``, the other
    OS's block, paths of the other OS, commands that do not exist there)."""
    problems = container_problems(spec, target, source=source)
    if problems:
        raise SpecError(problems)


def _check_target(target: str) -> None:
    if target not in ("windows", "linux"):
        raise ValueError(f"target must be 'windows' or 'linux', not {target!r}")
