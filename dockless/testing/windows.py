"""A fake Windows host for command-level tests of the Windows lane (ours and plugin authors').

Windows cannot run on the CI machines, so the Windows steps are tested at the command level:
every PowerShell command dockless starts goes through ``Context.run`` (see
:mod:`dockless.powershell`), and :class:`FakeWindowsHost` — an :class:`invoke.MockContext` —
decodes each script and behaves like the Windows host described by a mutable
:class:`HostState`:

* the batched probe script (:func:`dockless.powershell.probe_script`) is answered with the JSON
  the real cmdlets give (``Get-CimInstance Win32_Service``, ``Get-MpPreference``,
  ``Get-WindowsOptionalFeature``, ``Get-HnsNetwork``, ``Get-NetIPAddress`` through
  ``ConvertTo-Json -Compress`` of Windows PowerShell 5.1, which escapes ``'<>&`` as ``\\u0027``
  …); :attr:`HostState.json_arrays` switches the array shapes 5.1 produces depending on how
  an array reached ``ConvertTo-Json`` (a one-element array as a bare object, an empty one as
  ``null``, or ``{"value": [...], "Count": n}``);
* mutating scripts it recognises (``Add-MpPreference``, ``containerd.exe --register-service``,
  ``Start-Service``, ``New-HnsNetwork``, ``Enable-WindowsOptionalFeature`` …) change the state,
  so a second ``setup`` sees their effect and must do nothing;
* failures come back as Windows PowerShell reports them to a redirected stderr: exit code 1
  and the error record serialised as CLIXML (``#< CLIXML`` …);
* anything it does not recognise raises :class:`UnknownCommand`: a new command must be taught
  here (and checked against the real cmdlet) before a test can pass.

Every command is recorded (:attr:`FakeWindowsHost.commands`, decoded scripts in
:attr:`FakeWindowsHost.scripts`, :attr:`FakeWindowsHost.powershell_count`).

:func:`windows_settings`, :func:`windows_session` and :func:`run_setup` run a whole Windows
``setup`` on Linux: ``Settings.fs_root`` maps ``C:\\…`` onto a local folder, downloads come from
a local release mirror (:func:`dockless.testing.mirror.windows_mirror`), and the PowerShell goes
to the fake host, which also sees the installed files (``--register-service`` needs the
installed ``containerd.exe``, ``Import-Module`` the downloaded ``hns.psm1``).
"""
from __future__ import annotations

import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape as _xml_escape

from invoke import MockContext, Result, UnexpectedExit

from dockless import powershell

if TYPE_CHECKING:
    from dockless.registry import Registry
    from dockless.session import Session, StepResult
    from dockless.settings import Settings

__all__ = [
    "FakeWindowsHost",
    "HnsNetwork",
    "HostState",
    "Interface",
    "Process",
    "Service",
    "UnknownCommand",
    "containerd_service_path",
    "run_setup",
    "step_ids",
    "windows_session",
    "windows_settings",
]

#: What ``Get-MpPreference`` returns in place of the exclusion lists when a policy hides them
#: (``HideExclusionsFromLocalAdmins``; also every non-elevated session on recent Defender).
HIDDEN_EXCLUSIONS = "N/A: Must be an administrator to view exclusions"

#: ``Get-MpPreference`` when the Defender service is off (third-party antivirus, or disabled by policy).
DEFENDER_OFF_ERROR = ("Operation failed with the following error: 0x800106ba. "
                      "Operation failed with the following error: 0x%1!x!")

_NOT_RECOGNIZED = ("The term '{0}' is not recognized as the name of a cmdlet, function, script file, or "
                   "operable program. Check the spelling of the name, or if a path was included, verify "
                   "that the path is correct and try again.")

#: Windows PowerShell 5.1's ConvertTo-Json escapes these characters.
_PS51_ESCAPES = {"'": "\\u0027", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


class UnknownCommand(AssertionError):
    """dockless ran a command the fake host does not know: teach it (checked against the real cmdlet)."""


# -- host state --------------------------------------------------------------------------------
@dataclass
class Service:
    """The ``containerd`` Windows service as ``Win32_Service`` reports it."""

    path_name: str  # Win32_Service.PathName: the full command line SCM starts
    state: str = "Stopped"  # Running, Stopped, Start Pending, Stop Pending …
    start_mode: str = "Auto"


@dataclass
class Process:
    id: int
    path: str


@dataclass
class HnsNetwork:
    """An HNS network as ``Get-HnsNetwork`` reports it (HNS v1 schema, first subnet)."""

    name: str
    subnet: str | None
    gateway: str | None
    type: str = "NAT"
    id: str = field(default_factory=lambda: str(uuid.uuid4()).upper())


@dataclass
class Interface:
    """One ``Get-NetIPAddress -AddressFamily IPv4`` record."""

    ip: str
    prefix_length: int
    alias: str


def _default_interfaces() -> list[Interface]:
    return [Interface("192.168.50.20", 24, "Ethernet"), Interface("127.0.0.1", 8, "Loopback Pseudo-Interface 1")]


@dataclass
class HostState:
    """Everything the fake host knows; tests build it, scripts change it."""

    build: int = 20348
    ubr: int = 2655
    edition: str = "server"  # client | server (Win32_OperatingSystem.ProductType 1 → client)
    caption: str | None = None
    elevated: bool = True
    reboot_pending: bool = False
    user_profile: str = r"C:\Users\Administrator"
    #: Get-WindowsOptionalFeature State by name (Enabled, Disabled, EnablePending,
    #: DisabledWithPayloadRemoved …); a name missing here is not on the image at all.
    features: dict[str, str] | None = None
    service: Service | None = None  # the ``containerd`` service, if registered
    processes: list[Process] = field(default_factory=list)  # running containerd.exe processes
    pipe_open: bool = False  # \\.\pipe\containerd-containerd exists
    #: present | absent (no Defender cmdlets) | off (Get-MpPreference fails: service disabled by
    #: policy or another antivirus) | hidden (a policy hides the exclusion lists)
    defender: str = "present"
    exclusions: list[str] = field(default_factory=list)  # Defender ExclusionProcess
    networks: list[HnsNetwork] = field(default_factory=list)
    interfaces: list[Interface] = field(default_factory=_default_interfaces)
    #: how arrays inside probe values reach the JSON: "plain" (what ``@(...)`` gives), "single"
    #: (5.1's pipeline unrolling: one element → the bare element, none → null), "wrapped"
    #: (5.1's PSObject-wrapped arrays: {"value": [...], "Count": n})
    json_arrays: str = "plain"
    next_pid: int = 4100

    def __post_init__(self) -> None:
        if self.features is None:
            self.features = {"Containers": "Enabled",
                             "Microsoft-Hyper-V": "Enabled" if self.edition == "client" else "Disabled"}
        if self.caption is None:
            self.caption = ("Microsoft Windows 11 Pro" if self.edition == "client"
                            else "Microsoft Windows Server 2022 Datacenter")

    # -- helpers for tests ---------------------------------------------------------------------
    def network(self, name: str) -> HnsNetwork | None:
        return next((n for n in self.networks if n.name.lower() == name.lower()), None)

    def add_network(self, name: str, subnet: str, gateway: str, type: str = "NAT") -> HnsNetwork:
        """An HNS network plus the ``vEthernet (<name>)`` host vNIC HNS creates with it."""
        net = HnsNetwork(name, subnet, gateway, type)
        self.networks.append(net)
        prefix = ipaddress.ip_network(subnet, strict=False).prefixlen
        self.interfaces.append(Interface(gateway, prefix, f"vEthernet ({name})"))
        return net

    def remove_network(self, name: str) -> None:
        self.networks = [n for n in self.networks if n.name.lower() != name.lower()]
        self.interfaces = [i for i in self.interfaces if i.alias.lower() != f"vethernet ({name.lower()})"]

    def start_process(self, path: str) -> Process:
        proc = Process(self.next_pid, path)
        self.next_pid += 4
        self.processes.append(proc)
        return proc

    def install_service(self, exe: str, args: Iterable[str], state: str = "Running") -> Service:
        """A containerd service as ``containerd.exe --register-service ARGS`` registers it."""
        self.service = Service(containerd_service_path(exe, list(args)), state)
        if state == "Running":
            self.start_process(exe)
            self.pipe_open = True
        return self.service

    def reboot(self) -> None:
        """What a reboot changes: pending features become enabled, NAT networks are gone (they do
        not survive every reboot, field case C09), automatic services start."""
        assert self.features is not None
        for name, state in list(self.features.items()):
            if state == "EnablePending":
                self.features[name] = "Enabled"
            elif state == "DisablePending":
                self.features[name] = "Disabled"
        self.reboot_pending = False
        for net in list(self.networks):
            if net.type.lower() == "nat":
                self.remove_network(net.name)
        self.processes = []
        self.pipe_open = False
        if self.service is not None:
            self.service.state = "Stopped"
            if self.service.start_mode == "Auto":
                self.service.state = "Running"
                self.start_process(_service_exe(self.service.path_name))
                self.pipe_open = True


def _escape_arg(arg: str) -> str:
    """Go's ``syscall.EscapeArg`` (what ``mgr.CreateService`` uses to build the PathName)."""
    if arg == "":
        return '""'
    if not any(c in arg for c in ' \t"'):
        return arg
    out, slashes = ['"'], 0
    for c in arg:
        if c == "\\":
            slashes += 1
        elif c == '"':
            out.append("\\" * (slashes + 1))
            slashes = 0
        else:
            slashes = 0
        out.append(c)
    out.append("\\" * slashes + '"')
    return "".join(out)


def containerd_service_path(exe: str, args: list[str]) -> str:
    """The ``Win32_Service.PathName`` that ``containerd.exe --register-service ARGS`` leaves:
    containerd saves every other flag after ``--run-service`` (cmd/containerd service_windows.go)."""
    kept = [a for a in args if a not in ("--register-service", "--unregister-service")]
    return " ".join(_escape_arg(a) for a in [exe, "--run-service", *kept])


def _service_exe(path_name: str) -> str:
    if path_name.startswith('"'):
        return path_name[1:path_name.index('"', 1)]
    return path_name.split(" ", 1)[0]


# -- PowerShell error output ---------------------------------------------------------------------
class _PsError(Exception):
    """A terminating error inside the script: becomes exit 1 and a CLIXML error record."""

    def __init__(self, message: str, statement: str = "", line: int = 1,
                 category: str = "OperationStopped: (:) [], RuntimeException", error_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.statement = statement
        self.line = line
        self.category = category
        self.error_id = error_id or message


def _clixml(lines: list[str], progress: bool = False) -> str:
    """stderr of powershell.exe -EncodedCommand when stderr is redirected (Windows PowerShell 5.1)."""
    body = ""
    if progress:
        body += ('<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
                 '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for '
                 'first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR>'
                 '</MS></Obj>')
    for line in lines:
        body += f'<S S="Error">{_xml_escape(line)}_x000D__x000A_</S>'
    return f'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">{body}</Objs>'


def _error_record(err: _PsError) -> list[str]:
    stmt = err.statement.strip().splitlines()[0] if err.statement.strip() else ""
    return [
        err.message,
        f"At line:{err.line} char:1",
        f"+ {stmt}",
        "+ " + "~" * max(1, len(stmt)),
        f"    + CategoryInfo          : {err.category}",
        f"    + FullyQualifiedErrorId : {err.error_id}",
    ]


# -- JSON as Windows PowerShell 5.1 writes it ------------------------------------------------------
def _shape_arrays(value: Any, style: str) -> Any:
    if isinstance(value, dict):
        return {k: _shape_arrays(v, style) for k, v in value.items()}
    if isinstance(value, list):
        items = [_shape_arrays(v, style) for v in value]
        if style == "single":
            return None if not items else (items[0] if len(items) == 1 else items)
        if style == "wrapped":
            return {"value": items, "Count": len(items)}
        return items
    return value


def ps51_json(value: Any) -> str:
    """``ConvertTo-Json -Compress`` text of Windows PowerShell 5.1 (``'<>&`` escaped as \\uXXXX)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in _PS51_ESCAPES.items():
        text = text.replace(ch, esc)
    return text


# -- the fake host --------------------------------------------------------------------------------
_Q = r"'(?:[^']|'')*'"  # a PowerShell single-quoted string
_PROBE_ITEM = re.compile(
    r"try \{ \$dl\[(?P<key>" + _Q + r")\] = & \{\n(?P<body>.*?)\n\} \} "
    r"catch \{ \$dl\[(?P=key)\] = @\{ error = \$_\.Exception\.Message \} \}\n",
    re.S,
)
_PROBE_HEAD = "$dl = [ordered]@{}\n"
_PROBE_TAIL = "$dl | ConvertTo-Json -Depth 8 -Compress\n"
_TOKEN = re.compile(_Q + r"|\S+")


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == "'":
        return token[1:-1].replace("''", "'")
    return token


def _names(listing: str) -> list[str]:
    return [_unquote(t) for t in re.findall(_Q, listing)]


@dataclass
class _Run:
    """Per-script interpreter state."""

    last_exit: int = 0
    modules: set[str] = field(default_factory=set)
    native_stderr: list[str] = field(default_factory=list)
    line: int = 1
    statement: str = ""


class FakeWindowsHost(MockContext):
    """A Windows host behind ``Context.run`` (see the module documentation).

    ``fs_root`` (the ``Settings.fs_root`` of the run) lets the host see installed files.
    ``fail(fragment, message)`` makes the next statement containing ``fragment`` fail the way
    PowerShell reports it; ``probe_handlers[key] = fn(host, body) -> value`` answers probes of
    third-party steps.
    """

    # real attributes (invoke's DataProxy would store unknown names in the config)
    state: HostState = None  # type: ignore[assignment]
    fs_root: Path | None = None
    commands: list[str] = None  # type: ignore[assignment]
    scripts: list[str] = None  # type: ignore[assignment]
    failures: list[tuple[str, str, int]] = None  # type: ignore[assignment]
    probe_handlers: dict[str, Callable[[FakeWindowsHost, str], Any]] = None  # type: ignore[assignment]
    progress_noise: bool = True

    def __init__(self, state: HostState | None = None, *, fs_root: Path | None = None, config: Any = None) -> None:
        super().__init__(config=config)
        self.state = state if state is not None else HostState()
        self.fs_root = Path(fs_root) if fs_root is not None else None
        self.commands = []
        self.scripts = []
        self.failures = []
        self.probe_handlers = {}

    # -- what tests look at ----------------------------------------------------------------------
    @property
    def powershell_count(self) -> int:
        """How many PowerShell processes dockless started."""
        return sum(1 for c in self.commands if powershell.decode(c) is not None)

    @property
    def probe_scripts(self) -> list[str]:
        return [s for s in self.scripts if s.startswith(_PROBE_HEAD)]

    @property
    def actions(self) -> list[str]:
        """The scripts that were not the batched probe (what changed the host)."""
        return [s for s in self.scripts if not s.startswith(_PROBE_HEAD)]

    def reset_log(self) -> None:
        self.commands.clear()
        self.scripts.clear()

    def fail(self, fragment: str, message: str, times: int = 1) -> None:
        """Make the next ``times`` statements containing ``fragment`` fail with ``message``."""
        self.failures.append((fragment, message, times))

    # -- invoke's Context.run ---------------------------------------------------------------------
    def run(self, command: str, **kwargs: Any) -> Result:  # type: ignore[override]
        self.commands.append(command)
        script = powershell.decode(command)
        if script is None:
            raise UnknownCommand(f"the Windows host only runs PowerShell through dockless.powershell.command(); got: {command[:300]}")
        if not script.startswith(powershell.PRELUDE):
            raise UnknownCommand(f"script without dockless's prelude: {script[:300]}")
        body = script[len(powershell.PRELUDE):]
        self.scripts.append(body)
        run = _Run(line=powershell.PRELUDE.count("\n") + 1)
        stdout, stderr, exited = "", "", 0
        try:
            if body.startswith(_PROBE_HEAD):
                run.statement = body
                self._injected(run)
                stdout = self._probe(body)
            else:
                self._execute(body, run)
        except _PsError as err:
            exited = 1
            stderr = "".join(line + "\r\n" for line in run.native_stderr) + _clixml(_error_record(err), self.progress_noise)
        else:
            if run.native_stderr:
                stderr = "".join(line + "\r\n" for line in run.native_stderr)
            elif self.progress_noise and "Get-HnsNetwork" in body:
                stderr = _clixml([], progress=True)  # module auto-load progress, even on success
        result = Result(stdout=stdout, stderr=stderr, command=command, exited=exited)
        if exited and not kwargs.get("warn"):
            raise UnexpectedExit(result)
        return result

    # -- probes ------------------------------------------------------------------------------------
    def _probe(self, body: str) -> str:
        pos = len(_PROBE_HEAD)
        values: dict[str, Any] = {}
        for m in _PROBE_ITEM.finditer(body, pos):
            if m.start() != pos:
                break
            key = _unquote(m["key"])
            values[key] = self._probe_value(key, m["body"])
            pos = m.end()
        if body[pos:] != _PROBE_TAIL:
            raise UnknownCommand(f"probe script not in the shape of dockless.powershell.probe_script at: {body[pos:pos + 200]!r}")
        return ps51_json(values) + "\r\n"

    def _probe_value(self, key: str, body: str) -> Any:
        handlers: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
            "host": (("Win32_OperatingSystem", "CurrentBuildNumber", "Get-WindowsOptionalFeature"), self._probe_host),
            "containerd.service": (("Win32_Service", "Get-Process", "Test-Path"), self._probe_service),
            "defender.exclude": (("Get-MpPreference", "ExclusionProcess"), self._probe_defender),
            "hns.network": (("Get-HnsNetwork", "Get-NetIPAddress"), self._probe_hns),
        }
        if key in self.probe_handlers:
            value = self.probe_handlers[key](self, body)
        elif key in handlers:
            needles, fn = handlers[key]
            missing = [n for n in needles if n not in body]
            if missing:
                raise UnknownCommand(f"probe {key!r} changed ({', '.join(missing)} gone): teach FakeWindowsHost the new probe")
            try:
                value = fn(body)
            except _PsError as err:
                return {"error": err.message}
        else:
            raise UnknownCommand(f"no answer for probe {key!r}: register one in FakeWindowsHost.probe_handlers")
        return _shape_arrays(value, self.state.json_arrays)

    def _probe_host(self, body: str) -> Any:
        s = self.state
        assert s.features is not None
        names_m = re.search(r"foreach \(\$name in @\((?P<names>[^)]*)\)\)", body)
        names = _names(names_m["names"]) if names_m else ["Containers", "Microsoft-Hyper-V"]
        guarded = re.search(r"if \(\$elevated\)", body) is not None
        features: dict[str, str] = {}
        if s.elevated or not guarded:
            if not s.elevated:
                # DISM cmdlets throw (a terminating error -ErrorAction does not silence)
                raise _PsError("The requested operation requires elevation.")
            features = {n: s.features.get(n, "Absent") for n in names}
        return {
            "windows_build": s.build,
            "windows_ubr": s.ubr,
            "edition": s.edition,
            "caption": s.caption,
            "elevated": s.elevated,
            "reboot_pending": s.reboot_pending,
            "user_profile": s.user_profile,
            "features": features,
        }

    def _probe_service(self, body: str) -> Any:
        s = self.state
        m = re.search(r"Name='([^']+)'", body)
        if not m or m[1].lower() != "containerd":
            raise UnknownCommand(f"service probe for an unknown service: {body[:200]!r}")
        svc = None if s.service is None else {"state": s.service.state, "path": s.service.path_name}
        return {
            "service": svc,
            "processes": [{"Id": p.id, "Path": p.path} for p in s.processes],
            "pipe": s.pipe_open,
        }

    def _probe_defender(self, body: str) -> Any:
        s = self.state
        if s.defender == "absent":
            return {"available": False, "exclusions": []}
        if s.defender == "off":
            raise _PsError(DEFENDER_OFF_ERROR)
        if s.defender == "hidden":
            return {"available": True, "exclusions": [HIDDEN_EXCLUSIONS]}
        return {"available": True, "exclusions": list(s.exclusions)}

    def _probe_hns(self, body: str) -> Any:
        s = self.state
        self._need_hns()
        m = re.search(r"\$_\.Name -eq (" + _Q + r")", body)
        if not m:
            raise UnknownCommand(f"HNS probe without a name filter: {body[:200]!r}")
        name = _unquote(m[1])
        nets = [{
            "Name": n.name, "Type": n.type, "ID": n.id,
            "Subnets": [] if n.subnet is None else [
                {"AddressPrefix": n.subnet, "GatewayAddress": n.gateway, "Policies": []}],
        } for n in s.networks if n.name == name]
        ips = [{"IPAddress": i.ip, "PrefixLength": i.prefix_length, "InterfaceAlias": i.alias} for i in s.interfaces]
        return {"network": nets, "interfaces": ips}

    def _need_hns(self) -> None:
        assert self.state.features is not None
        if self.state.features.get("Containers") != "Enabled":
            raise _PsError(_NOT_RECOGNIZED.format("Get-HnsNetwork"))

    # -- scripts that change the host -----------------------------------------------------------
    def _execute(self, body: str, run: _Run) -> None:
        pos = 0
        while pos < len(body):
            if body[pos] in "\r\n \t":
                if body[pos] == "\n":
                    run.line += 1
                pos += 1
                continue
            for pattern, handler in _RULES:
                m = pattern.match(body, pos)
                if m:
                    break
            else:
                raise UnknownCommand(f"FakeWindowsHost does not know this PowerShell: {body[pos:pos + 300]!r}")
            run.statement = m.group(0)
            self._injected(run)
            handler(self, m, run)
            run.line += m.group(0).count("\n")
            pos = m.end()

    def _injected(self, run: _Run) -> None:
        """Raise the failure registered with :meth:`fail` for this statement, if any."""
        for i, (fragment, message, times) in enumerate(self.failures):
            if fragment in run.statement:
                if times <= 1:
                    del self.failures[i]
                else:
                    self.failures[i] = (fragment, message, times - 1)
                raise _PsError(message, run.statement, run.line, "NotSpecified: (:) [], Exception", "InjectedFailure")

    def _local(self, path: str) -> Path | None:
        if self.fs_root is None:
            return None
        p = PureWindowsPath(path)
        return Path(self.fs_root, p.drive.rstrip(":") or "C", *p.parts[1:])

    def _exists(self, path: str) -> bool:
        local = self._local(path)
        return True if local is None else local.is_file()

    def _error(self, run: _Run, message: str, category: str = "NotSpecified: (:) [], Exception", error_id: str = "") -> _PsError:
        return _PsError(message, run.statement, run.line, category, error_id)

    # handlers ----------------------------------------------------------------------------------
    def _enable_features(self, m: re.Match[str], run: _Run) -> None:
        self._set_features(run, "Enable-WindowsOptionalFeature", _names(m["names"]))

    def _install_features(self, m: re.Match[str], run: _Run) -> None:
        if self.state.edition == "client":  # ServerManager exists on Windows Server only
            raise self._error(run, _NOT_RECOGNIZED.format("Install-WindowsFeature"),
                              "ObjectNotFound: (Install-WindowsFeature:String) [], CommandNotFoundException",
                              "CommandNotFoundException")
        names = ["Microsoft-Hyper-V" if n == "Hyper-V" else n for n in _names(m["names"])]
        self._set_features(run, "Install-WindowsFeature", names)

    def _set_features(self, run: _Run, cmdlet: str, names: list[str]) -> None:
        s = self.state
        assert s.features is not None
        if not s.elevated:
            raise self._error(run, f"{cmdlet} : The requested operation requires elevation.")
        for name in names:
            if name not in s.features:
                raise self._error(run, f"{cmdlet} : Feature name {name} is unknown.")
        for name in names:
            if s.features[name] != "Enabled":
                s.features[name] = "EnablePending"
                s.reboot_pending = True

    def _containerd(self, m: re.Match[str], run: _Run) -> None:
        exe = _unquote(m["exe"])
        args = [_unquote(t) for t in _TOKEN.findall(m["args"])]
        if not self._exists(exe):
            raise self._error(run, _NOT_RECOGNIZED.format(exe),
                              f"ObjectNotFound: ({exe}:String) [], CommandNotFoundException", "CommandNotFoundException")
        s = self.state
        name = "containerd"
        if "--service-name" in args:
            name = args[args.index("--service-name") + 1]
        if name != "containerd":
            raise UnknownCommand(f"containerd service {name!r}: only 'containerd' is modelled")
        if "--register-service" in args:
            if s.service is not None:
                run.native_stderr.append("containerd: The specified service already exists.")
                run.last_exit = 1
                return
            s.service = Service(containerd_service_path(exe, args))
            run.last_exit = 0
        elif "--unregister-service" in args:
            if s.service is None:
                run.native_stderr.append("containerd: The specified service does not exist as an installed service.")
                run.last_exit = 1
                return
            s.service = None  # SCM deletes it (it was stopped first)
            run.last_exit = 0
        else:
            raise UnknownCommand(f"containerd.exe run with {args}: only --register-service/--unregister-service are modelled")

    def _check_exit(self, m: re.Match[str], run: _Run) -> None:
        if run.last_exit != 0:
            message = m["msg"].replace("$LASTEXITCODE", str(run.last_exit))
            raise self._error(run, message, f"OperationStopped: ({message}:String) [], RuntimeException", message)

    def _stop_service(self, m: re.Match[str], run: _Run) -> None:
        s = self.state
        if s.service is None:
            if m["silent"]:
                return
            raise self._no_service(run, "Stop-Service")
        self._stop(s.service)

    def _stop(self, svc: Service) -> None:
        s = self.state
        if svc.state != "Stopped":
            exe = _service_exe(svc.path_name).lower()
            s.processes = [p for p in s.processes if p.path.lower() != exe]
            s.pipe_open = False
        svc.state = "Stopped"

    def _no_service(self, run: _Run, cmdlet: str) -> _PsError:
        return self._error(run, f"{cmdlet} : Cannot find any service with service name 'containerd'.",
                           "ObjectNotFound: (containerd:String) [" + cmdlet + "], ServiceCommandException",
                           f"NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.{cmdlet.replace('-', '')}Command")

    def _start_service(self, m: re.Match[str], run: _Run) -> None:
        s = self.state
        verb = m["verb"]
        if s.service is None:
            raise self._no_service(run, f"{verb}-Service")
        if verb == "Restart":
            self._stop(s.service)
        if s.service.state == "Running":
            return
        exe = _service_exe(s.service.path_name)
        cannot = (f"{verb}-Service : Service 'containerd (containerd)' cannot be started due to the following "
                  f"error: Cannot start service containerd on computer '.'.")
        config = re.search(r'--config (?:"([^"]+)"|(\S+))', s.service.path_name)
        config_file = self._local(config[1] or config[2]) if config else None
        if (s.pipe_open  # another containerd owns the pipe: the service exits at once
                or not self._exists(exe)
                or (config_file is not None and config_file.is_file()
                    and config_file.read_bytes().startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")))):
            raise self._error(run, cannot, "OpenError: (System.ServiceProcess.ServiceController:ServiceController) "
                              f"[{verb}-Service], ServiceCommandException",
                              f"CouldNotStartService,Microsoft.PowerShell.Commands.{verb}ServiceCommand")
        s.service.state = "Running"
        s.start_process(exe)
        s.pipe_open = True

    def _wait_pipe(self, m: re.Match[str], run: _Run) -> None:
        if _unquote(m["pipe"]) != r"\\.\pipe\containerd-containerd":
            raise UnknownCommand(f"waiting for an unknown pipe {m['pipe']}")
        if not self.state.pipe_open:
            if m["stop"] and self.state.service is not None:  # the script stops the service it started
                self.state.service.state = "Stopped"
            message = _unquote(m["msg"])
            raise self._error(run, message, f"OperationStopped: ({message}:String) [], RuntimeException", message)

    def _defender(self, m: re.Match[str], run: _Run) -> None:
        s = self.state
        cmdlet = f"{m['verb']}-MpPreference"
        path = _unquote(m["path"])
        if s.defender == "absent":
            raise self._error(run, _NOT_RECOGNIZED.format(cmdlet),
                              f"ObjectNotFound: ({cmdlet}:String) [], CommandNotFoundException", "CommandNotFoundException")
        if s.defender == "off":
            raise self._error(run, f"{cmdlet} : {DEFENDER_OFF_ERROR}",
                              f"NotSpecified: (MSFT_MpPreference:root\\Microsoft\\...FT_MpPreference) [{cmdlet}], CimException",
                              f"HRESULT 0x800106ba,{cmdlet}")
        present = [e for e in s.exclusions if e.lower() == path.lower()]
        if m["verb"] == "Add" and not present:
            s.exclusions.append(path)
        elif m["verb"] == "Remove":
            s.exclusions = [e for e in s.exclusions if e.lower() != path.lower()]

    def _import_module(self, m: re.Match[str], run: _Run) -> None:
        path = _unquote(m["path"])
        if not self._exists(path):
            raise self._error(run, f"Import-Module : The specified module '{path}' was not loaded because no valid "
                              "module file was found in any module directory.",
                              f"ResourceUnavailable: ({path}:String) [Import-Module], FileNotFoundException",
                              "Modules_ModuleNotFound,Microsoft.PowerShell.Commands.ImportModuleCommand")
        run.modules.add(PureWindowsPath(path).name.lower())

    def _new_network(self, m: re.Match[str], run: _Run) -> None:
        s = self.state
        if "hns.psm1" not in run.modules:  # the built-in HostNetworkingService module has no New-HnsNetwork
            raise self._error(run, _NOT_RECOGNIZED.format("New-HnsNetwork"),
                              "ObjectNotFound: (New-HnsNetwork:String) [], CommandNotFoundException", "CommandNotFoundException")
        try:
            self._need_hns()
        except _PsError as err:
            raise self._error(run, err.message) from None
        name, subnet, gateway = (_unquote(m[k]) for k in ("name", "subnet", "gateway"))
        if m["type"].lower() == "nat" and any(n.type.lower() == "nat" for n in s.networks):
            # WinNAT supports one internal prefix per host
            raise self._error(run, "HNS failed with error : The object already exists. ")
        s.add_network(name, subnet, gateway, m["type"])

    def _remove_network(self, m: re.Match[str], run: _Run) -> None:
        self._need_hns()
        self.state.remove_network(_unquote(m["name"]))


_RULES: list[tuple[re.Pattern[str], Callable[..., None]]] = [
    (re.compile(r"Enable-WindowsOptionalFeature -Online -FeatureName (?P<names>" + _Q + r"(?:, " + _Q
                + r")*) -All -NoRestart \| Out-Null\n"), FakeWindowsHost._enable_features),
    (re.compile(r"Install-WindowsFeature -Name (?P<names>" + _Q + r"(?:, " + _Q + r")*) \| Out-Null\n"),
     FakeWindowsHost._install_features),
    (re.compile(r"& (?P<exe>" + _Q + r") (?P<args>--(?:un)?register-service[^\n]*)\n"), FakeWindowsHost._containerd),
    (re.compile(r'if \(\$LASTEXITCODE -ne 0\) \{ throw "(?P<msg>[^"\n]*)" \}\n'), FakeWindowsHost._check_exit),
    (re.compile(r"Stop-Service containerd(?P<silent> -ErrorAction SilentlyContinue)?\n"), FakeWindowsHost._stop_service),
    (re.compile(r"(?P<verb>Start|Restart)-Service containerd\n"), FakeWindowsHost._start_service),
    (re.compile(r"\$deadline = \(Get-Date\)\.AddSeconds\(\d+\)\n"
                r"while \(-not \(Test-Path (?P<pipe>" + _Q + r")\)\) \{\n"
                r"    if \(\(Get-Date\) -gt \$deadline\) \{ (?P<stop>Stop-Service containerd -ErrorAction SilentlyContinue; )?"
                r"throw (?P<msg>" + _Q + r") \}\n"
                r"    Start-Sleep -Milliseconds \d+\n\}\n"), FakeWindowsHost._wait_pipe),
    (re.compile(r"(?P<verb>Add|Remove)-MpPreference -ExclusionProcess (?P<path>" + _Q + r")\n"), FakeWindowsHost._defender),
    (re.compile(r"Import-Module (?P<path>" + _Q + r") -DisableNameChecking\n"), FakeWindowsHost._import_module),
    (re.compile(r"New-HnsNetwork -Type (?P<type>\w+) -Name (?P<name>" + _Q + r") -AddressPrefix (?P<subnet>" + _Q
                + r") -Gateway (?P<gateway>" + _Q + r") \| Out-Null\n"), FakeWindowsHost._new_network),
    (re.compile(r"Get-HnsNetwork \| Where-Object \{ \$_\.Name -eq (?P<name>" + _Q + r") \} \| Remove-HnsNetwork\n"),
     FakeWindowsHost._remove_network),
]


# -- a whole Windows setup on Linux ------------------------------------------------------------------
def windows_settings(root: Path, *, mirror: Path | str | None = None, pins: dict[str, str] | None = None,
                     sections: dict[str, dict[str, Any]] | None = None, versions: dict[str, str] | None = None,
                     force: bool = False) -> Settings:
    """Windows ``Settings`` whose files live under ``root/fs`` (``C:\\`` → ``root/fs/C``).

    ``mirror``: a release mirror (a local directory or URL, as ``DOCKLESS_MIRROR``); ``pins``:
    sha256 pins to add (what :func:`dockless.testing.mirror.windows_mirror` returns);
    ``sections``: component settings as in dockless.toml (``{"hns": {"subnet": ...}}``);
    ``versions``: pins that override versions.toml."""
    from dockless.settings import load_settings

    root = Path(root)
    env = {"DOCKLESS_TARGET": "windows"}
    if mirror is not None:
        env["DOCKLESS_MIRROR"] = str(mirror)
    settings = load_settings(env, cwd=root)
    if versions:
        settings.pins = settings.pins.merged(dict(versions), "test versions")
    settings.pins.sha256.update(pins or {})
    for name, values in (sections or {}).items():
        settings.sections.setdefault(name, {}).update(values)
    settings.fs_root = root / "fs"
    settings.force = force
    return settings


def windows_session(host: FakeWindowsHost, settings: Settings, registry: Registry | None = None,
                    cache: Path | str | None = None) -> Session:
    """A :class:`~dockless.session.Session` on the fake host (built-in plugins unless
    ``registry`` is given). ``cache``: the download cache (default ``DOCKLESS_CACHE`` or the
    user cache)."""
    from dockless.download import Cache
    from dockless.manager import collect, plugin_manager
    from dockless.session import Session

    if registry is None:
        registry = collect(plugin_manager(entry_points=False))
    if host.fs_root is None:
        host.fs_root = settings.fs_root
    session = Session(host, settings, registry)
    session._cache = Cache(Path(cache), fsync=False) if cache is not None else Cache()
    return session


def run_setup(session: Session, *, enable_features: bool = False) -> list[StepResult]:
    """What ``invoke setup`` does (:meth:`Session.run_all`)."""
    return session.run_all(enable_features=enable_features)


def count_noop_powershell(work: Path) -> int:
    """PowerShell processes a no-op Windows ``setup`` starts (a full setup first, on a fresh
    fake host in ``work``): what ``bench/run`` reports."""
    from dockless.testing.mirror import windows_mirror

    settings = windows_settings(work)
    versions = dict(settings.pins.versions)
    pins = windows_mirror(work / "mirror", versions)
    settings = windows_settings(work, mirror=work / "mirror", pins=pins)
    host = FakeWindowsHost(HostState())
    run_setup(windows_session(host, settings, cache=work / "cache"))
    second = FakeWindowsHost(host.state)
    run_setup(windows_session(second, settings, cache=work / "cache"))
    return second.powershell_count


def step_ids(results: Iterable[StepResult], status: str) -> list[str]:
    """The steps of a run that ended with ``status`` (``changed``, ``ok``, ``warning`` …)."""
    return [r.step for r in results if r.status == status]

