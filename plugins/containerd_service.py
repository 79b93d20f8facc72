"""containerd's service, for the containerd plugin: a background process (Linux without systemd),
a systemd unit or a Windows service. ``plan_service`` starts or restarts it (``containerd.service``),
``stop_for_upgrade`` stops it before ``containerd.install`` swaps its binaries, ``undo_service``
stops it for ``teardown``. A helper module, not a plugin: ``plugins/containerd.py`` registers the
steps.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from dockless import killpoint, powershell
from dockless.actions import Action, Call, PowerShell, Refusal, StepFailed
from dockless.powershell import quote
from dockless.render import render
from plugins._paths import TEMPLATES

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session

SERVICE_NAME = "containerd"


def socket_answers(path: str | os.PathLike[str]) -> bool:
    """True when something accepts connections on the unix socket ``path`` (containerd up)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(0.5)
    try:
        sock.connect(os.fspath(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def pid_file(session: Session) -> Path:
    return session.local(session.layout.dockless_dir / "containerd.pid")


def running_pid(session: Session) -> int | None:
    try:
        pid = int(pid_file(session).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:  # a recycled pid is not ours
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if cmdline and cmdline[0].endswith(b"containerd") else None


def needs_restart(session: Session) -> bool:
    if {"containerd.install", "containerd.config"} & session.changed:
        return True
    # a run killed between writing the config/binary and restarting: the daemon runs old files
    started = session.manifest.components.get("containerd", {}).get("started_with")
    return bool(started) and started != fingerprint(session)


def fingerprint(session: Session) -> str | None:
    """sha256 over what a (re)start loads: the containerd binary, config.toml and the command
    line (log level); recorded when dockless starts containerd so that a later run sees a daemon
    still running older files or flags."""
    from dockless.files import sha256_bytes, sha256_file

    parts = [daemon_line(session)]
    for target in (session.layout.exe("containerd"), session.layout.containerd_config):
        local = session.local(target)
        if not local.exists():
            return None
        entry = session.manifest.files.get(str(target))
        ours = entry is not None and session.manifest.file_state(str(target), local) == "ours"
        parts.append(entry["sha256"] if ours else sha256_file(local))
    return sha256_bytes(" ".join(parts).encode())


def remember_start(session: Session) -> None:
    session.manifest.set_component("containerd", started_with=fingerprint(session))


def our_processes(session: Session) -> list[int]:
    """containerd processes started from dockless's binary with dockless's config: a run
    killed before it wrote the pid file leaves one behind."""
    exe = str(session.local(session.layout.exe("containerd"))).encode()
    config = str(session.layout.containerd_config).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0] == exe and config in argv:
            found.append(int(entry.name))
    return found


def daemon_line(session: Session) -> str:
    lay = session.layout
    level = session.config("containerd")["log_level"]
    return (f"setsid {lay.exe('containerd')} --config {lay.containerd_config} --log-level {level} "
            f">>{lay.log_file} 2>&1 </dev/null & echo $!")


def start_process(session: Session) -> None:
    lay = session.layout
    for folder in (lay.log_file.parent, lay.containerd_root, lay.containerd_state, lay.cni_conf_dir):
        session.record_new_dirs(folder)  # created here or by containerd (CRI makes the conf dir): teardown removes them
    session.local(lay.log_file).parent.mkdir(parents=True, exist_ok=True)
    env = {"PATH": f"{session.local(lay.bin_dir)}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    session.manifest.add_record("process", "containerd", "containerd")  # before: a kill may come any time
    remember_start(session)
    result = session.c.run(daemon_line(session), hide=True, env=env)
    pid = int(result.stdout.strip().splitlines()[-1])
    try:
        killpoint.at("containerd.service:started")  # test hook: launched, pid file not yet written
        pid_file(session).write_text(f"{pid}\n")
        wait_for_socket(session, pid)
    except BaseException:  # the step fails: the containerd it started must not run on (no orphan)
        stop_started(session, pid)
        raise


def stop_started(session: Session, pid: int) -> None:
    """Stop the containerd this run started (and any other started from dockless's binary
    with dockless's config) after ``containerd.service`` failed, and say so."""
    pids = [pid] + [p for p in our_processes(session) if p != pid]
    for each in pids:
        try:
            stop_process(session, each, timeout=10.0)
        except OSError:
            continue  # already gone
    pid_file(session).unlink(missing_ok=True)
    session.console.print(f"  containerd.service: stopped the containerd it started (pid {', '.join(map(str, pids))})",
                          markup=False)


def wait_for_socket(session: Session, pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if socket_answers(session.layout.address):
            return
        try:
            os.kill(pid, 0)
        except OSError:
            log = session.local(session.layout.log_file)
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise StepFailed(f"containerd exited at start: {tail[0] if tail else 'no log'} (log: {session.layout.log_file})") from None
        time.sleep(0.05)
    raise StepFailed(f"containerd did not answer on {session.layout.address} within {timeout:.0f}s (log: {session.layout.log_file})")


def stop_process(session: Session, pid: int | None = None, timeout: float = 15.0) -> None:
    pid = pid or running_pid(session)
    if pid is None:
        return
    try:
        os.kill(pid, 15)
    except ProcessLookupError:  # already gone
        pid_file(session).unlink(missing_ok=True)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    else:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    pid_file(session).unlink(missing_ok=True)


def plan_service_process(session: Session) -> list[Action]:
    pid = running_pid(session) if session.settings.native else None  # fresh host: nothing runs yet
    if pid and socket_answers(session.layout.address) and not needs_restart(session):
        return []
    actions: list[Action] = []
    orphans = [] if pid or not session.settings.native else our_processes(session)
    for orphan in orphans:  # started by a run killed before it wrote the pid file
        actions.append(Call(f"stop containerd (pid {orphan}) left by an interrupted run", lambda s, o=orphan: stop_process(s, o)))
    if pid:
        actions.append(Call(f"stop containerd (pid {pid}) to load the new binary/config", lambda s: stop_process(s, pid)))
    elif session.settings.native and not orphans and socket_answers(session.layout.address):
        raise StepFailed(f"another containerd already answers on {session.layout.address}; stop it or choose another DOCKLESS_ROOT")
    actions.append(Call(f"start containerd as a background process and wait for {session.layout.address}",
                        start_process, shown=[daemon_line(session)]))
    return actions


def plan_service_systemd(session: Session) -> list[Action]:
    lay = session.layout
    unit = render(TEMPLATES / "containerd", "containerd.service.j2", containerd=lay.exe("containerd"),
                  config=lay.containerd_config, bin_dir=lay.bin_dir,
                  log_level=session.config("containerd")["log_level"])
    actions = session.desired_file(unit_path(session), unit)
    from dockless.actions import Run

    if actions or needs_restart(session):
        actions += [Run(["systemctl", "daemon-reload"]), Run(["systemctl", "enable", SERVICE_NAME]),
                    Run(["systemctl", "restart", SERVICE_NAME])]
    elif not socket_answers(lay.address):
        actions += [Run(["systemctl", "start", SERVICE_NAME])]
    if actions:
        actions.append(Call(f"wait for {lay.address}", lambda s: _wait_systemd(s)))
    return actions


def _wait_systemd(session: Session) -> None:
    remember_start(session)
    deadline = time.monotonic() + 30
    while not socket_answers(session.layout.address):
        if time.monotonic() > deadline:
            # dockless (re)started the unit: do not leave it running (or restarting) with what failed
            session.c.run(f"systemctl stop {SERVICE_NAME}", hide=True, warn=True)
            raise StepFailed(f"containerd did not answer on {session.layout.address} and was stopped again; "
                             f"see `journalctl -u containerd`")
        time.sleep(0.1)


# Windows service -------------------------------------------------------------------------------
SERVICE_PROBE = r"""
$svc = Get-CimInstance Win32_Service -Filter "Name='containerd'"
$procs = @(Get-Process -Name containerd -ErrorAction SilentlyContinue | Select-Object Id, Path)
[ordered]@{
    service = $(if ($null -eq $svc) { $null } else { [ordered]@{ state = $svc.State; path = $svc.PathName } })
    processes = $procs
    pipe = (Test-Path '\\.\pipe\containerd-containerd')
}
"""


def service_args(session: Session) -> list[str]:
    lay = session.layout
    return ["--config", str(lay.containerd_config), "--log-file", str(lay.log_file),
            "--log-level", session.config("containerd")["log_level"]]


def split_command_line(line: str) -> list[str]:
    """A Windows command line as the C runtime splits it (``CommandLineToArgvW`` rules): what
    ``Win32_Service.PathName`` holds after ``containerd --register-service``."""
    args: list[str] = []
    cur: list[str] = []
    in_arg = quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if c in " \t" and not quoted:
            if in_arg:
                args.append("".join(cur))
                cur, in_arg = [], False
            i += 1
            continue
        in_arg = True
        if c == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            if i + n < len(line) and line[i + n] == '"':
                cur.append("\\" * (n // 2))
                if n % 2:
                    cur.append('"')
                    i += n + 1
                else:
                    i += n
            else:
                cur.append("\\" * n)
                i += n
            continue
        if c == '"':
            quoted = not quoted
        else:
            cur.append(c)
        i += 1
    if in_arg:
        args.append("".join(cur))
    return args


def service_command_matches(path_name: str, exe: str, args: list[str]) -> bool:
    """True when the registered service runs exactly ``exe --run-service ARGS`` (the binary
    path and every flag; paths compared case-insensitively, as Windows does)."""
    argv = split_command_line(path_name)
    if not argv or argv[0].casefold() != exe.casefold():
        return False
    rest = [a for a in argv[1:] if a != "--run-service"]
    return [a.casefold() for a in rest] == [a.casefold() for a in args]


def wait_pipe_script(session: Session, seconds: int = 60) -> str:
    pipe = quote(session.layout.address)
    return (f"$deadline = (Get-Date).AddSeconds({seconds})\n"
            f"while (-not (Test-Path {pipe})) {{\n"
            f"    if ((Get-Date) -gt $deadline) {{ Stop-Service containerd -ErrorAction SilentlyContinue; "
            f"throw 'containerd did not open its pipe within {seconds}s and was stopped again: see {session.layout.log_file}' }}\n"
            f"    Start-Sleep -Milliseconds 250\n}}\n")


def plan_service_windows(session: Session) -> list[Action]:
    probe: Any = session.probe("containerd.service") or {}
    if "error" in probe:
        raise StepFailed(f"could not query the containerd service: {probe['error']}")
    svc = probe.get("service")
    exe = str(session.layout.exe("containerd"))
    args = service_args(session)
    wanted = svc is not None and service_command_matches(str(svc.get("path") or ""), exe, args)
    procs = [p for p in powershell.as_list(probe.get("processes")) if isinstance(p, dict)]
    stray = svc is None or svc.get("state") == "Stopped"  # then the pipe's owner is not the service
    if stray and (procs or probe.get("pipe")):
        where = ", ".join(f"pid {p.get('Id')} {p.get('Path')}" for p in procs) or "unknown process"
        what = "no containerd service is registered" if svc is None else f"the containerd service is {svc.get('state')}"
        raise StepFailed(f"a containerd that is not the service already runs or owns {session.layout.address} "
                         f"({where}; {what}); stop it before `invoke setup`")
    register = (f"& {quote(exe)} --register-service " + " ".join(quote(a) for a in args) + "\n"
                "if ($LASTEXITCODE -ne 0) { throw \"containerd --register-service failed with exit code $LASTEXITCODE\" }\n")
    actions: list[Action] = []
    if svc is None:
        actions.append(PowerShell(register, "register the containerd service", record=("service", SERVICE_NAME)))
    elif not wanted:
        actions.append(PowerShell(
            "Stop-Service containerd -ErrorAction SilentlyContinue\n"
            f"& {quote(exe)} --unregister-service\n" + register,
            "re-register the containerd service (binary path or flags changed)", record=("service", SERVICE_NAME)))
    running = svc is not None and svc.get("state") == "Running" and wanted
    if running and not needs_restart(session) and probe.get("pipe"):
        return actions
    verb = "Restart-Service containerd" if running else "Start-Service containerd"
    actions.append(PowerShell(f"{verb}\n" + wait_pipe_script(session), f"{verb.split('-')[0].lower()} containerd and wait for its pipe"))
    return actions


def unit_path(session: Session) -> PurePath:
    return PurePath(session.settings.root or "/") / "etc" / "systemd" / "system" / "containerd.service"


def undo_service(session: Session) -> list[Action]:
    """Teardown: stop the containerd dockless started (and unregister the Windows service it
    registered); the unit file and binaries then go with the manifest's files."""
    if session.settings.target == "windows":
        if not session.manifest.has_record("service", SERVICE_NAME):
            return []
        exe = quote(session.layout.exe("containerd"))
        return [PowerShell("Stop-Service containerd -ErrorAction SilentlyContinue\n"
                           f"& {exe} --unregister-service\n"
                           "if ($LASTEXITCODE -ne 0) { throw \"containerd --unregister-service failed with exit code $LASTEXITCODE\" }\n",
                           "stop and unregister the containerd service")]
    if str(unit_path(session)) in session.manifest.files:
        from dockless.actions import Run

        return [Run(["systemctl", "disable", "--now", SERVICE_NAME], "stop and disable the containerd unit")]
    pid = running_pid(session)
    pids = ([pid] if pid else []) + [p for p in our_processes(session) if p != pid]
    actions: list[Action] = [Call(f"stop containerd (pid {p})", lambda s, p=p: stop_process(s, p)) for p in pids]
    if pid_file(session).exists() and not pids:
        actions.append(Call("remove the stale containerd pid file", lambda s: pid_file(s).unlink(missing_ok=True)))
    return actions


# The paths a config.toml makes containerd use, and containerd's defaults when it names none.
DEFAULT_PATHS = {
    "linux": {"root": "/var/lib/containerd", "state": "/run/containerd",
              "grpc.address": "/run/containerd/containerd.sock", "opt": "/opt/containerd"},
    "windows": {"root": r"C:\ProgramData\containerd\root", "state": r"C:\ProgramData\containerd\state",
                "grpc.address": r"\\.\pipe\containerd-containerd"},
}


def config_paths(data: dict[str, Any], target: str) -> dict[str, tuple[str, bool]]:
    """``{key: (value, is_default)}`` for root, state, grpc.address (and on Linux the opt
    plugin's path) as containerd reads them from a parsed config.toml."""
    defaults = DEFAULT_PATHS[target]
    grpc = data.get("grpc") if isinstance(data.get("grpc"), dict) else {}
    plugins = data.get("plugins") if isinstance(data.get("plugins"), dict) else {}
    opt = plugins.get("io.containerd.internal.v1.opt")
    given = {"root": data.get("root"), "state": data.get("state"), "grpc.address": grpc.get("address"),
             "opt": opt.get("path") if isinstance(opt, dict) else None}
    return {key: (str(given[key]), False) if given[key] else (default, True) for key, default in defaults.items()}


def _same_path(a: str, b: str, target: str) -> bool:
    if target == "windows":
        return a.replace("/", "\\").rstrip("\\").casefold() == b.replace("/", "\\").rstrip("\\").casefold()
    return os.path.normpath(a) == os.path.normpath(b)


def _under(path: str, root: str) -> bool:
    path, root = os.path.normpath(path), os.path.normpath(root)
    return root == "/" or path == root or path.startswith(root + "/")


def check_config_paths(session: Session) -> None:
    """Refuse to start containerd with a config.toml (one dockless kept: the user's) whose
    root, state or gRPC address is not where dockless's layout puts them: containerd would
    serve on the host's socket and fill the host's /var/lib/containerd (outside DOCKLESS_ROOT),
    and dockless would wait on a socket nobody opens."""
    import tomllib

    from dockless.files import read_bytes

    lay = session.layout
    local = session.local(lay.containerd_config)
    raw = read_bytes(local)
    if raw is None:
        return
    if session.settings.force and session.manifest.file_state(str(lay.containerd_config), local) != "ours":
        return  # containerd.config replaces it with dockless's (a backup is kept)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # containerd.config names that problem
    target = session.settings.target
    wanted = {"root": str(lay.containerd_root), "state": str(lay.containerd_state), "grpc.address": lay.address}
    wrong = []
    for key, (value, default) in config_paths(data, target).items():
        if key == "opt":  # dockless sets it under the root; elsewhere is fine unless DOCKLESS_ROOT is set
            if target == "linux" and session.settings.root and not _under(value, session.settings.root):
                wrong.append(f"[plugins.\"io.containerd.internal.v1.opt\"] path = '{value}'"
                             + (" (containerd's default, the key is absent)" if default else "")
                             + f" is outside DOCKLESS_ROOT {session.settings.root}")
            continue
        if not _same_path(value, wanted[key], target):
            wrong.append(f"{key} = '{value}'" + (" (containerd's default, the key is absent)" if default else "")
                         + f" but dockless uses '{wanted[key]}'")
    if wrong:
        raise Refusal(f"{lay.containerd_config} sets {'; '.join(wrong)}: containerd would run outside "
                         f"dockless's layout; re-run with --force to let dockless write its config (a backup of "
                         f"yours is kept), or set those keys in it")


def plan_service(session: Session) -> list[Action]:
    if session.settings.native:
        check_config_paths(session)  # before anything starts containerd with that config
    if session.settings.target == "windows":
        return plan_service_windows(session)
    if session.settings.service == "systemd":
        return plan_service_systemd(session)
    return plan_service_process(session)


def stop_for_upgrade(session: Session) -> list[Action]:
    """Stop the containerd dockless runs before its binaries are swapped (an upgrade or a
    re-pin back); ``containerd.service`` starts it again with the new binary and config."""
    if not session.settings.native:
        return []
    if session.settings.target == "windows":
        probe: Any = session.probe("containerd.service") or {}
        if (probe.get("service") or {}).get("state") == "Running":
            return [PowerShell("Stop-Service containerd\n", "stop the containerd service before swapping its binaries")]
        return []
    if session.settings.service == "systemd":
        if socket_answers(session.layout.address) and str(unit_path(session)) in session.manifest.files:
            from dockless.actions import Run

            return [Run(["systemctl", "stop", SERVICE_NAME], "stop containerd before swapping its binaries")]
        return []
    pid = running_pid(session)
    if pid is None:
        return []
    return [Call(f"stop containerd (pid {pid}) before swapping its binaries", lambda s: stop_process(s, pid))]
