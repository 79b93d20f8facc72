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
from typing import Any

from dockless import killpoint, powershell
from dockless.actions import Action, Call, PowerShell, StepFailed
from dockless.powershell import quote
from dockless.render import render
from dockless.session import Session
from plugins._paths import TEMPLATES

SERVICE_NAME = "containerd"


def socket_answers(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(0.5)
    try:
        sock.connect(path)
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
    killpoint.at("containerd.service:started")  # test hook: launched, pid file not yet written
    pid_file(session).write_text(f"{pid}\n")
    wait_for_socket(session, pid)


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
    os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
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
            raise StepFailed(f"containerd did not answer on {session.layout.address}; see `journalctl -u containerd`")
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
            f"    if ((Get-Date) -gt $deadline) {{ throw 'containerd did not open its pipe within {seconds}s: see {session.layout.log_file}' }}\n"
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


def plan_service(session: Session) -> list[Action]:
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
