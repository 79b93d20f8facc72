"""The life of an install after ``setup``: ``status``, ``doctor`` (``--fix``) and ``teardown``.

All three start from the manifest (what dockless installed, wrote, started and registered) and
look at the host; Windows host state comes from the session's one batched probe.

* :func:`status` — per component the installed vs the pinned version, the state of each file
  dockless wrote (ours / edited / missing), what ``setup`` would still change, the service and
  the network.
* :func:`checks` — doctor: one :class:`Check` per common failure, each with its fix; the safe
  fixes re-run steps (``Session.run_step``) or re-encode a file, see :func:`apply_fixes`.
* :func:`teardown` — reverses what the manifest records, in reverse step order, and nothing else.
"""
from __future__ import annotations

import ipaddress
import json
import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from invoke import Exit

from dockless.actions import Install, StepFailed, Warn
from dockless.files import atomic_write, bad_encoding
from dockless.session import Session

CNI_SUFFIXES = (".conf", ".conflist", ".json")  # what libcni loads from a conf dir, sorted by name
# containerd's own defaults when config.toml names no CNI dirs
DEFAULT_CNI = {
    "linux": ("/opt/cni/bin", "/etc/cni/net.d"),
    "windows": (r"C:\Program Files\containerd\cni\bin", r"C:\Program Files\containerd\cni\conf"),
}
_CODECS = {"UTF-8 with BOM": "utf-8-sig", "UTF-16LE": "utf-16", "UTF-16BE": "utf-16", "UTF-16LE without BOM": "utf-16-le"}


# -- shared helpers ---------------------------------------------------------------------------------
def target_path(session: Session, text: str) -> PurePath:
    """A path string from the manifest as a path of the target's flavour."""
    return PureWindowsPath(text) if session.settings.target == "windows" else PurePosixPath(text)


def read_only(session: Session) -> Session:
    """A fresh dry session on the same host and settings (checks plan steps; planning marks steps
    changed, which must not leak into a session that then runs steps)."""
    return Session(session.c, session.settings, session.registry, dry=True, console=session.console)


def require_host(session: Session, what: str) -> None:
    s = session.settings
    if s.target != s.host and s.fs_root is None:
        raise Exit(f"{what} looks at a {s.target} host; run it there (this is a {s.host} machine)", 2)


def _as_list(value: Any) -> list[Any]:
    """A probe value that Windows PowerShell 5.1 may have turned into null, a bare element or
    ``{"value": [...], "Count": n}`` as a list."""
    if value is None:
        return []
    if isinstance(value, dict) and {k.lower() for k in value} <= {"value", "count"} and isinstance(value.get("value"), list):
        return list(value["value"])
    return list(value) if isinstance(value, list) else [value]


def _probe(session: Session, key: str) -> Any:
    value = session.probe(key) if key in session.steps or key == "host" else None
    return value if isinstance(value, dict) else None


def component_steps(session: Session, comp_name: str) -> list[str]:
    return [sid for sid, (comp, _step) in session.steps.items() if comp.name == comp_name]


def cni_component(session: Session) -> Any:
    return next((c for c in session.components if c.role == "cni"), None)


def cni_confs(session: Session) -> list[str]:
    """Conf file names in the CNI conf dir, in the order libcni loads them (first one counts)."""
    folder = session.local(session.layout.cni_conf_dir)
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in CNI_SUFFIXES)
    except OSError:
        return []


def dockless_conf(session: Session) -> str | None:
    """The name of the conf dockless wrote for the active CNI provider, if it is recorded."""
    comp = cni_component(session)
    conf_dir = session.layout.cni_conf_dir
    for path, entry in sorted(session.manifest.files.items()):
        target = target_path(session, path)
        if comp is not None and entry["component"] == comp.name and entry["kind"] == "rendered" and target.parent == conf_dir:
            return target.name
    return None


def file_states(session: Session, component: str | None = None) -> dict[str, str]:
    return {path: session.manifest.file_state(path, session.local(target_path(session, path)))
            for path, entry in sorted(session.manifest.files.items())
            if component is None or entry["component"] == component}


def backup_name(local: Path) -> Path:
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    backup = local.with_name(f"{local.name}.{stamp}.bak")
    n = 1
    while backup.exists():
        backup = local.with_name(f"{local.name}.{stamp}-{n}.bak")
        n += 1
    return backup


# -- status ---------------------------------------------------------------------------------------
def status(session: Session) -> dict[str, Any]:
    """What is installed, what is pinned, what drifted, and whether containerd and its network
    work; ``problems`` lists everything that is wrong (empty: all green)."""
    problems: list[str] = []
    components = []
    for comp in session.components:
        sids = component_steps(session, comp.name)
        if not sids:
            continue
        installed = session.manifest.components.get(comp.name, {}).get("version")
        pinned: str | None = None
        pending: list[str] = []
        for sid in sids:
            try:
                actions = session.plan_step(sid)
            except StepFailed as exc:
                pending.append(f"{sid}: {exc}")
                continue
            for action in actions:
                if isinstance(action, Install) and pinned is None:
                    pinned = action.artifact.version
                if not isinstance(action, Warn):
                    pending.append(f"{sid}: {action.describe()}")
        if pinned is None:
            pinned = installed  # the install step is satisfied: what is installed is the pin
        files = file_states(session, comp.name)
        entry = {"name": comp.name, "installed": installed, "pinned": pinned, "files": files, "pending": pending}
        if pinned is not None and installed != pinned:
            problems.append(f"{comp.name}: installed {installed or 'nothing'}, pinned {pinned}")
        problems += [f"{path}: {state}" + (" (changed outside dockless)" if state == "edited" else "")
                     for path, state in files.items() if state != "ours"]
        problems += [f"setup would: {p}" for p in pending]
        entry["ok"] = not pending and all(s == "ours" for s in files.values()) and installed == pinned
        components.append(entry)
    service = service_state(session)
    if service is not None and not service["ok"]:
        problems.append(f"service: {service['detail']}")
    network = network_state(session)
    if network is not None and not network["ok"]:
        problems.append(f"network: {network['detail']}")
    return {"target": session.settings.target, "ok": not problems, "components": components,
            "service": service, "network": network, "problems": problems}


def service_state(session: Session) -> dict[str, Any] | None:
    if not session.active("containerd"):
        return None
    from plugins.containerd import running_pid, socket_answers

    lay = session.layout
    if session.settings.target == "windows":
        probe = _probe(session, "containerd.service")
        if probe is None:
            return {"kind": "windows-service", "state": "unknown", "answers": None, "ok": False,
                    "detail": "the containerd service could not be probed"}
        if "error" in probe:
            return {"kind": "windows-service", "state": "unknown", "answers": None, "ok": False,
                    "detail": f"the containerd service could not be queried: {probe['error']}"}
        svc = probe.get("service") or {}
        state = svc.get("state") or "not registered"
        answers = bool(probe.get("pipe"))
        ok = state == "Running" and answers
        detail = (f"service {state}, answers on {lay.address}" if ok else
                  f"service {state}, " + ("answers" if answers else "nothing answers") + f" on {lay.address}")
        return {"kind": "windows-service", "state": state, "answers": answers, "ok": ok, "detail": detail}
    answers = socket_answers(lay.address)
    if session.settings.service == "systemd":
        result = session.c.run("systemctl is-active containerd", hide=True, warn=True)
        state = (getattr(result, "stdout", "") or "unknown").strip() or "unknown"
        ok = state == "active" and answers
        return {"kind": "systemd", "state": state, "answers": answers, "ok": ok,
                "detail": f"unit {state}, " + ("answers" if answers else "nothing answers") + f" on {lay.address}"}
    pid = running_pid(session)
    state = f"running (pid {pid})" if pid else "not running"
    ok = bool(pid) and answers
    if ok:
        detail = f"containerd pid {pid} answers on {lay.address}"
    elif pid:
        detail = f"containerd pid {pid} runs but does not answer on {lay.address}"
    elif answers:
        detail = f"a containerd dockless did not start answers on {lay.address}"
    else:
        detail = f"containerd is not running (nothing answers on {lay.address})"
    return {"kind": "process", "state": state, "pid": pid, "answers": answers, "ok": ok, "detail": detail}


def network_state(session: Session) -> dict[str, Any] | None:
    comp = cni_component(session)
    if comp is None:
        return None
    confs = cni_confs(session)
    ours = dockless_conf(session)
    active = confs[0] if confs else None
    ok = active is not None and active == ours
    if active is None:
        detail = f"no CNI conf in {session.layout.cni_conf_dir}"
    elif ours is None or ours not in confs:
        detail = f"dockless's CNI conf is missing from {session.layout.cni_conf_dir} (containerd loads {active})"
    elif active != ours:
        detail = f"{active} comes before dockless's {ours}: containerd loads only the first conf"
    else:
        detail = f"CNI conf {active} ({comp.name})"
    out: dict[str, Any] = {"provider": comp.name, "conf_dir": str(session.layout.cni_conf_dir), "confs": confs,
                           "active": active, "ok": ok, "detail": detail}
    if session.settings.target == "windows" and session.active("hns"):
        from dockless.netcheck import hns_network_from_probe

        name = session.config("hns")["name"]
        probe = _probe(session, "hns.network")
        try:
            net = hns_network_from_probe(probe.get("network"), name=name) if probe is not None else None
        except ValueError:
            net = None
        out["hns"] = {"name": name, "present": net is not None,
                      "subnet": net.subnet if net else None, "gateway": net.gateway if net else None}
        if net is None:
            out["ok"] = False
            out["detail"] = f"HNS network {name} is missing; " + detail
    return out


def print_status(report: dict[str, Any]) -> None:
    rows = [("component", "installed", "pinned", "files", "state")]
    for comp in report["components"]:
        states = list(comp["files"].values())
        files = ", ".join(f"{states.count(s)} {s}" for s in ("ours", "edited", "missing") if states.count(s)) or "-"
        rows.append((comp["name"], comp["installed"] or "-", comp["pinned"] or "-", files,
                     "ok" if comp["ok"] else ("drift" if "edited" in states else "needs setup")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    for key in ("service", "network"):
        item = report[key]
        if item is not None:
            print(f"{key}: {'ok' if item['ok'] else 'FAIL'}  {item['detail']}")
    if report["problems"]:
        print(f"{len(report['problems'])} problem(s):")
        for problem in report["problems"]:
            print(f"  - {problem.splitlines()[0]}")
    else:
        print("all green")


# -- doctor ---------------------------------------------------------------------------------------
@dataclass
class Check:
    """One doctor check: ``ok`` None means not applicable here (skipped)."""

    name: str
    ok: bool | None
    message: str
    fix: str = ""
    steps: tuple[str, ...] = ()  # re-running these steps is the (safe) fix
    apply: Callable[[Session], None] | None = field(default=None, repr=False)  # a safe fix that is no step

    @property
    def fixable(self) -> bool:
        return bool(self.steps or self.apply)

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.ok]
        text = f"{mark}  {self.name}: {self.message}"
        if self.ok is False and self.fix:
            text += f" -> fix: {self.fix}" + (" (doctor --fix does it)" if self.fixable else "")
        return text


def checks(session: Session) -> list[Check]:
    """Every doctor check that applies to this graph, in a stable order."""
    found: list[Check] = []
    for fn in (check_service, check_cni_dirs, check_cni_confs, check_hns, check_crictl, check_defender,
               check_encoding, check_sandbox_image):
        try:
            found += fn(session)
        except StepFailed as exc:
            found.append(Check(fn.__name__.removeprefix("check_").replace("_", "-"), False, str(exc)))
    return found


def _steps(session: Session, *ids: str) -> tuple[str, ...]:
    return tuple(sid for sid in ids if sid in session.steps)


def check_service(session: Session) -> list[Check]:
    state = service_state(session)
    if state is None:
        return []
    steps = _steps(session, "containerd.service")
    if state["ok"]:
        return [Check("service", True, state["detail"])]
    if state["kind"] == "process" and state["answers"] and not state.get("pid"):
        return [Check("service", False, state["detail"], "stop that containerd, or choose another DOCKLESS_ROOT")]
    if state["kind"] == "windows-service" and state["state"] == "unknown":
        return [Check("service", False, state["detail"], "run from an elevated PowerShell")]
    return [Check("service", False, state["detail"], "invoke containerd.service", steps)]


def cni_dirs_in_config(data: dict[str, Any], target: str) -> tuple[list[str], str]:
    """The CNI bin dirs and conf dir a containerd config.toml (schema 2, 3 or 4) makes containerd use."""
    plugins = data.get("plugins") or {}
    if int(data.get("version", 1)) >= 3:
        cni = ((plugins.get("io.containerd.cri.v1.runtime") or {}).get("cni")) or {}
    else:
        cni = ((plugins.get("io.containerd.grpc.v1.cri") or {}).get("cni")) or {}
    default_bin, default_conf = DEFAULT_CNI[target]
    bins = cni.get("bin_dirs") or ([cni["bin_dir"]] if cni.get("bin_dir") else [default_bin])
    return [str(b) for b in bins], str(cni.get("conf_dir") or default_conf)


def check_cni_dirs(session: Session) -> list[Check]:
    if not session.active("containerd") or cni_component(session) is None:
        return []
    lay = session.layout
    path = lay.containerd_config
    local = session.local(path)
    config_steps = _steps(session, "containerd.config", "containerd.service")
    try:
        raw = local.read_bytes()
    except FileNotFoundError:
        return [Check("cni-dirs", False, f"{path} is missing", "invoke containerd.config containerd.service", config_steps)]
    if bad_encoding(raw):
        return [Check("cni-dirs", None, f"{path} is not UTF-8 (see the encoding check)")]
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        return [Check("cni-dirs", False, f"{path} is not valid TOML ({exc})", "fix the file, or `invoke setup --force` (a backup is kept)")]
    bins, conf_dir = cni_dirs_in_config(data, session.settings.target)
    ours = session.manifest.file_state(str(path), local) == "ours"
    fix = ("re-render config.toml and restart containerd" if ours
           else f"edit {path}, or `invoke setup --force` to replace it (a backup is kept)")
    fix_steps = config_steps if ours else ()
    found = []
    wanted_bin = lay.cni_bin_dir
    if not any(target_path(session, b) == wanted_bin for b in bins):
        found.append(Check("cni-dirs", False, f"config.toml looks for CNI plugins in {', '.join(bins)} but they are "
                           f"installed in {wanted_bin}", fix, fix_steps))
    if target_path(session, conf_dir) != lay.cni_conf_dir:
        found.append(Check("cni-dirs", False, f"config.toml reads CNI confs from {conf_dir} but dockless writes them "
                           f"to {lay.cni_conf_dir}", fix, fix_steps))
    comp = cni_component(session)
    plugins = [p for p, e in session.manifest.files.items() if e["component"] == comp.name and e["kind"] == "installed"]
    missing = [target_path(session, p).name for p in plugins if not session.local(target_path(session, p)).exists()]
    install = _steps(session, *[f"{sid}" for sid in component_steps(session, comp.name) if sid.endswith(".install")])
    if not plugins or missing:
        what = ", ".join(missing) if missing else "no plugins"
        found.append(Check("cni-dirs", False, f"CNI plugins missing from {wanted_bin}: {what}",
                           "invoke " + " ".join(install), install))
    if not found:
        found.append(Check("cni-dirs", True, f"config.toml uses {wanted_bin} and {lay.cni_conf_dir}, where dockless put them"))
    return found


def check_cni_confs(session: Session) -> list[Check]:
    comp = cni_component(session)
    if comp is None:
        return []
    conf_dir = session.layout.cni_conf_dir
    confs = cni_confs(session)
    ours = dockless_conf(session)
    config = _steps(session, *[sid for sid in component_steps(session, comp.name) if sid.endswith(".config")])
    if not confs:
        return [Check("cni-conf", False, f"no CNI conf in {conf_dir}: pods get no network", "invoke " + " ".join(config), config)]
    if ours is None or ours not in confs:
        return [Check("cni-conf", False, f"dockless's CNI conf is missing from {conf_dir} (found {', '.join(confs)})",
                      "invoke " + " ".join(config), config)]
    if len(confs) > 1:
        others = [c for c in confs if c != ours]
        recorded = all(str(conf_dir / c) in session.manifest.files for c in others)  # an inactive provider's
        head = (f"{confs[0]} shadows dockless's {ours}" if confs[0] != ours else f"{', '.join(others)} will be ignored")
        return [Check("cni-conf", False, f"{len(confs)} CNI confs in {conf_dir}: containerd loads only the first ({head})",
                      "invoke " + " ".join(config) if recorded else f"move {', '.join(others)} out of {conf_dir}",
                      config if recorded else ())]
    return [Check("cni-conf", True, f"one CNI conf in {conf_dir}: {ours}")]


def check_hns(session: Session) -> list[Check]:
    if session.settings.target != "windows" or not session.active("hns"):
        return []
    from dockless.netcheck import hns_network_from_probe

    name = session.config("hns")["name"]
    probe = _probe(session, "hns.network")
    if probe is None:
        return [Check("hns", None, "HNS was not probed (not a Windows host)")]
    if "error" in probe:
        return [Check("hns", False, f"could not query HNS: {probe['error']}", "check the Containers feature, run elevated")]
    try:
        net = hns_network_from_probe(probe.get("network"), name=name)
    except ValueError as exc:
        return [Check("hns", False, str(exc))]
    if net is None:
        return [Check("hns", False, f"HNS network {name} is missing (NAT networks do not survive every reboot)",
                      "invoke hns.network", _steps(session, "hns.network"))]
    conf = _read_conf(session)
    if conf is None:
        return [Check("hns", True, f"HNS network {name} {net.subnet} exists (no CNI conf to compare)")]
    conf_path, data, ours = conf
    ipam = data.get("ipam") or {}
    conf_subnet = ipam.get("subnet")
    conf_gw = next((r.get("gw") for r in ipam.get("routes") or [] if isinstance(r, dict) and r.get("gw")), None)
    problems = []
    if data.get("name") != name:
        problems.append(f"names network {data.get('name')!r}")
    if not _same_net(conf_subnet, net.subnet):
        problems.append(f"has subnet {conf_subnet}")
    if conf_gw and net.gateway and conf_gw != net.gateway:
        problems.append(f"has gateway {conf_gw}")
    if problems:
        config = _steps(session, *[sid for sid in component_steps(session, cni_component(session).name) if sid.endswith(".config")])
        return [Check("hns", False, f"HNS network {name} is {net.subnet} via {net.gateway} but {conf_path.name} "
                      + ", ".join(problems),
                      "re-render the CNI conf from the network" if ours else f"fix {conf_path}, or `invoke setup --force`",
                      config if ours else ())]
    return [Check("hns", True, f"HNS network {name} {net.subnet} via {net.gateway} matches {conf_path.name}")]


def _same_net(a: Any, b: Any) -> bool:
    try:
        return ipaddress.ip_network(str(a), strict=False) == ipaddress.ip_network(str(b), strict=False)
    except ValueError:
        return False


def _read_conf(session: Session) -> tuple[PurePath, dict[str, Any], bool] | None:
    ours = dockless_conf(session)
    confs = cni_confs(session)
    name = confs[0] if confs else ours
    if name is None:
        return None
    path = session.layout.cni_conf_dir / name
    local = session.local(path)
    try:
        data = json.loads(local.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    state = session.manifest.file_state(str(path), local)
    return path, data if isinstance(data, dict) else {}, state == "ours"


def check_crictl(session: Session) -> list[Check]:
    if not session.active("crictl"):
        return []
    lay = session.layout
    path = lay.crictl_config
    local = session.local(path)
    steps = _steps(session, "crictl.config")
    found = []
    if session.settings.target == "windows":
        host = _probe(session, "host")
        profile = (host or {}).get("user_profile")
        if profile and "error" not in (host or {}):
            reads = PureWindowsPath(profile) / ".crictl" / "crictl.yaml"
            if reads != path:
                found.append(Check("crictl", False, f"crictl reads {reads} but dockless wrote {path}",
                                   f"set [host] user_profile = '{profile}' in dockless.toml and run setup"))
    try:
        text = local.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return found + [Check("crictl", False, f"{path} is missing: crictl tries the default endpoints",
                              "invoke crictl.config", steps)]
    ours = session.manifest.file_state(str(path), local) == "ours"
    for key in ("runtime-endpoint", "image-endpoint"):
        value = next((line.split(":", 1)[1].strip().strip("'\"") for line in text.splitlines()
                      if line.strip().startswith(key + ":")), None)
        if value != lay.crictl_endpoint:
            found.append(Check("crictl", False, f"{path} {key} is {value or 'not set'}, containerd answers on {lay.crictl_endpoint}",
                               "invoke crictl.config" if ours else f"edit {path}, or `invoke setup --force` (a backup is kept)",
                               steps if ours else ()))
    return found or [Check("crictl", True, f"{path} points at {lay.crictl_endpoint}")]


def check_defender(session: Session) -> list[Check]:
    if session.settings.target != "windows" or not session.active("defender") or not session.config("defender")["enabled"]:
        return []
    exe = str(session.layout.exe("containerd"))
    probe = _probe(session, "defender.exclude")
    if probe is None:
        return [Check("defender", None, "Defender was not probed (not a Windows host)")]
    if "error" in probe:
        return [Check("defender", False, f"Defender preferences cannot be read ({probe['error']})", "run elevated")]
    if not probe.get("available"):
        return [Check("defender", True, "Windows Defender is not on this host; no exclusion needed")]
    if any(str(e).lower() == exe.lower() for e in _as_list(probe.get("exclusions"))):
        return [Check("defender", True, f"Defender excludes {exe}")]
    return [Check("defender", False, f"no Defender process exclusion for {exe}: scans slow down every container start",
                  "invoke defender.exclude", _steps(session, "defender.exclude"))]


def check_encoding(session: Session) -> list[Check]:
    lay = session.layout
    paths = {str(lay.containerd_config): lay.containerd_config} if session.active("containerd") else {}
    if session.active("crictl"):
        paths[str(lay.crictl_config)] = lay.crictl_config
    for name in cni_confs(session):
        paths[str(lay.cni_conf_dir / name)] = lay.cni_conf_dir / name
    for path, entry in session.manifest.files.items():
        if entry["kind"] == "rendered":
            paths[path] = target_path(session, path)
    found = []
    for key in sorted(paths):
        local = session.local(paths[key])
        try:
            raw = local.read_bytes()
        except OSError:
            continue
        encoding = bad_encoding(raw)
        if encoding and encoding in _CODECS:
            found.append(Check("encoding", False, f"{paths[key]} is {encoding}: containerd, CNI and crictl read only UTF-8 without BOM",
                               "re-save it as UTF-8 without BOM (a backup is kept)", apply=_reencoder(paths[key])))
        elif encoding:
            found.append(Check("encoding", False, f"{paths[key]} is {encoding}", f"re-save it as UTF-8, or `invoke setup --force`"))
    return found or [Check("encoding", True, f"{len(paths)} config file(s) are UTF-8 without BOM")]


def _reencoder(path: PurePath) -> Callable[[Session], None]:
    def reencode(session: Session) -> None:
        local = session.local(path)
        raw = local.read_bytes()
        codec = _CODECS[bad_encoding(raw) or ""]
        text = raw.decode(codec)
        backup = backup_name(local)
        backup.write_bytes(raw)
        atomic_write(local, text.encode("utf-8"))
        session.console.print(f"  re-encoded {path} as UTF-8 without BOM (backup: {backup})", markup=False)
    return reencode


def check_sandbox_image(session: Session) -> list[Check]:
    if session.settings.target != "windows" or not session.active("containerd"):
        return []
    from dockless.winimages import ImageMismatch, check_sandbox_image as check

    host = _probe(session, "host")
    if host is None or "error" in host:
        return [Check("sandbox-image", None, "host build not probed")]
    image = session.config("containerd")["sandbox_image"]
    try:
        check(int(host["windows_build"]), host.get("edition", "server"), image=image)
    except ImageMismatch as exc:
        return [Check("sandbox-image", False, str(exc).splitlines()[0],
                      "set [containerd] sandbox_image in dockless.toml to an image for this build, then `invoke setup`")]
    return [Check("sandbox-image", True, f"{image} runs on build {host['windows_build']}")]


def print_checks(found: list[Check]) -> None:
    for check in found:
        print(check.line())


def apply_fixes(session: Session, found: list[Check]) -> list[str]:
    """Run the safe fixes of the failed checks in ``session`` (not dry): re-encodings first, then
    the steps, once each, in graph order. Returns one line per fix that failed."""
    todo = [c for c in found if c.ok is False and c.fixable]
    failed: list[str] = []
    session._acquire_lock()
    try:
        for check in todo:
            if check.apply is not None:
                try:
                    check.apply(session)
                except OSError as exc:
                    failed.append(f"{check.name}: {exc}")
        wanted = {sid for c in todo for sid in c.steps}
        for sid in [s for s in session.steps if s in wanted]:
            try:
                session.run_step(sid)
            except Exit as exc:
                failed.append(str(exc.message or sid))
    finally:
        session.release()
    return failed


# -- teardown -------------------------------------------------------------------------------------
@dataclass
class TeardownReport:
    removed: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)  # "path -> backup"
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def data_dirs(session: Session) -> list[PurePath]:
    return [session.layout.containerd_root, session.layout.containerd_state]


def teardown(session: Session, *, purge: bool = False, force: bool = False) -> TeardownReport:
    """Reverse what the manifest records, in reverse step order: each step's ``undo`` (stop the
    service, remove the exclusion/network), then the component's files (edited ones are moved
    aside as ``<name>.<timestamp>.bak`` unless ``force``), then (``purge``) containerd's data,
    the dirs dockless created when empty, and last the manifest. Nothing else is touched."""
    report = TeardownReport()
    manifest = session.manifest
    session._acquire_lock()
    try:
        order = list(session.steps)
        first_of: dict[str, str] = {}
        for sid in order:
            first_of.setdefault(session.steps[sid][0].name, sid)
        undo_failed: set[str] = set()
        for sid in reversed(order):
            comp, step = session.steps[sid]
            start = time.perf_counter()
            changed = False
            try:
                actions = list(step.undo(session)) if step.undo else []
                for action in actions:
                    if not isinstance(action, Warn):
                        session.console.print(f"  {sid}: undo: {action.describe()}", markup=False)
                    action.run(session, comp.name)
                    changed = changed or not isinstance(action, Warn)
                if first_of[comp.name] == sid and comp.name in undo_failed:
                    report.kept.append(f"the files of {comp.name}: an undo of it failed (a running service may use them)")
                elif first_of[comp.name] == sid:
                    count = sum(e["component"] == comp.name for e in manifest.files.values())
                    if count:
                        session.console.print(f"  {sid}: remove the {count} file(s) dockless wrote for {comp.name}", markup=False)
                    changed = _remove_component(session, comp.name, force, report) or changed
                    if not session.dry:
                        for rec in [r for r in manifest.records if r["component"] == comp.name]:
                            manifest.remove_record(rec["kind"], rec["value"])
            except (StepFailed, OSError) as exc:
                session._finish(sid, "failed", start, str(exc))
                report.failed.append(f"{sid}: {exc}")
                undo_failed.add(comp.name)
                continue
            session._finish(sid, "changed" if changed else "ok", start)
        active = {c.name for c in session.components}
        for other in sorted({e["component"] for e in manifest.files.values()} - active):
            _remove_component(session, other, force, report)  # files of a component no longer in the graph
        for rec in manifest.records:
            report.kept.append(f"{rec['kind']} {rec['value']} of {rec['component']}: that component is not active, "
                               f"so its undo cannot run (enable it and run teardown again)")
            report.failed.append(f"{rec['kind']} {rec['value']} left in place")
        if purge:
            _purge(session, report)
        if not report.failed and not session.dry:
            _finish_teardown(session, report)
    finally:
        session.release()
    if not report.failed and not session.dry:
        lock = session.local(session.layout.dockless_dir / "dockless.lock")
        lock.unlink(missing_ok=True)
        _remove_empty_dirs(session, report)
    return report


def _remove_component(session: Session, component: str, force: bool, report: TeardownReport) -> bool:
    changed = False
    for path, entry in sorted(session.manifest.files.items(), reverse=True):
        if entry["component"] != component:
            continue
        target = target_path(session, path)
        local = session.local(target)
        state = session.manifest.file_state(path, local)
        changed = True
        if session.dry:
            session.console.print(f"  (dry) remove {path}", markup=False)
            continue
        if state == "edited" and not force:
            backup = backup_name(local)
            os.replace(local, backup)
            report.backups.append(f"{path} -> {backup}")
            session.console.print(f"  kept your changes to {path}: moved to {backup} (teardown --force deletes it)", markup=False)
        elif state != "missing":
            local.unlink()
            report.removed.append(path)
        session.manifest.forget_file(path)
    if component in session.manifest.components and not session.dry:
        session.manifest.components.pop(component)
        session.manifest.save()
    return changed


def _mounts_under(folder: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    prefix = str(folder).rstrip("/") + "/"
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].encode().decode("unicode_escape")
            if point == str(folder) or point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _purge(session: Session, report: TeardownReport) -> None:
    import shutil

    for folder in data_dirs(session):
        local = session.local(folder)
        if not local.exists():
            continue
        if session.dry:
            session.console.print(f"  (dry) remove {folder} (containerd data)", markup=False)
            continue
        if session.settings.target == "linux" and session.settings.native:
            for point in _mounts_under(local):  # snapshots or sandboxes of containers still mounted
                result = session.c.run(f"umount {point!r}", hide=True, warn=True)
                if result is not None and not result.ok:
                    session.c.run(f"umount -l {point!r}", hide=True, warn=True)
        errors: list[str] = []
        shutil.rmtree(local, onerror=lambda _fn, p, exc: errors.append(f"{p}: {exc[1]}"))
        if errors:
            report.failed.append(f"could not remove all of {folder}: {errors[0]}")
        else:
            report.removed.append(str(folder))
            session.console.print(f"  removed containerd data {folder}", markup=False)
    log = session.local(session.layout.log_file)
    if log.exists() and not session.dry:
        log.unlink()
        report.removed.append(str(session.layout.log_file))


def _finish_teardown(session: Session, report: TeardownReport) -> None:
    from plugins.containerd import pid_file

    pid = pid_file(session)
    if pid.exists():
        pid.unlink()
    session.manifest.path.unlink(missing_ok=True)
    report.removed.append(str(session.manifest.path))
    if not purge_done(session):
        kept = [str(f) for f in data_dirs(session) if session.local(f).exists()]
        if session.local(session.layout.log_file).exists():
            kept.append(str(session.layout.log_file))
        if kept:
            report.kept.append(f"containerd data and log: {', '.join(kept)} (teardown --purge removes them)")


def purge_done(session: Session) -> bool:
    return not any(session.local(f).exists() for f in data_dirs(session))


def _remove_empty_dirs(session: Session, report: TeardownReport) -> None:
    for folder in sorted(session.manifest.dirs, key=lambda d: len(target_path(session, d).parts), reverse=True):
        try:
            session.local(target_path(session, folder)).rmdir()
        except OSError:
            continue  # not empty (the user's files, containerd's data) or already gone


def print_teardown(report: TeardownReport, session: Session) -> None:
    from rich.markup import escape

    out = session.console
    for line in report.backups:
        out.print(f"backup: {line}", markup=False)
    for line in report.kept:
        out.print(f"kept: {line}", markup=False)
    for line in report.failed:
        out.print(f"[red]failed[/]: {escape(line)}")
    if report.failed:
        out.print("teardown incomplete: the manifest is kept; fix the above and run `invoke teardown` again")
    else:
        out.print(f"teardown done: {len(report.removed)} item(s) removed")
