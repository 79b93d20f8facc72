"""``doctor``: one :class:`Check` per common failure, each with its fix; the safe fixes re-run steps
(``Session.run_step``) or re-encode a file, see :func:`apply_fixes`.
"""
from __future__ import annotations

import ipaddress
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath, PureWindowsPath
from typing import Any

from invoke import Exit

from dockless.actions import StepFailed
from dockless.files import atomic_write, backup_name, bad_encoding
from dockless.hoststate import cni_component, cni_confs, component_steps, dockless_conf, probed, target_path
from dockless.powershell import as_list
from dockless.session import Session
from dockless.status import service_state

# containerd's own defaults when config.toml names no CNI dirs
DEFAULT_CNI = {
    "linux": ("/opt/cni/bin", "/etc/cni/net.d"),
    "windows": (r"C:\Program Files\containerd\cni\bin", r"C:\Program Files\containerd\cni\conf"),
}
_CODECS = {"UTF-8 with BOM": "utf-8-sig", "UTF-16LE": "utf-16", "UTF-16BE": "utf-16", "UTF-16LE without BOM": "utf-16-le"}


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
    probe = probed(session, "hns.network")
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
        host = probed(session, "host")
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
    probe = probed(session, "defender.exclude")
    if probe is None:
        return [Check("defender", None, "Defender was not probed (not a Windows host)")]
    if "error" in probe:
        return [Check("defender", False, f"Defender preferences cannot be read ({probe['error']})", "run elevated")]
    if not probe.get("available"):
        return [Check("defender", True, "Windows Defender is not on this host; no exclusion needed")]
    if any(str(e).lower() == exe.lower() for e in as_list(probe.get("exclusions"))):
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
    read = 0
    for key in sorted(paths):
        local = session.local(paths[key])
        try:
            raw = local.read_bytes()
        except OSError:
            continue
        read += 1
        encoding = bad_encoding(raw)
        if encoding and encoding in _CODECS:
            found.append(Check("encoding", False, f"{paths[key]} is {encoding}: containerd, CNI and crictl read only UTF-8 without BOM",
                               "re-save it as UTF-8 without BOM (a backup is kept)", apply=_reencoder(paths[key])))
        elif encoding:
            found.append(Check("encoding", False, f"{paths[key]} is {encoding}", "re-save it as UTF-8, or `invoke setup --force`"))
    if found:
        return found
    if not read:
        return [Check("encoding", None, "no config files to check (none of dockless's config files exists)")]
    return [Check("encoding", True, f"{read} config file(s) are UTF-8 without BOM")]


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

    host = probed(session, "host")
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
