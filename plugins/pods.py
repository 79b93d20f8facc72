"""Pods through crictl: ``pod.create`` and friends against the containerd dockless set up.

``pod.create`` renders ``pod.json`` and ``container.json`` from ``templates/pods/`` (or takes
the user's own files), checks them before containerd sees them (podspec: unknown fields,
Linux blocks or POSIX paths on Windows, port mappings the active CNI conf would drop;
winimages: an image and isolation that run on this Windows build, and the same for the pause
image), keeps them under ``<dockless_dir>/pods/<name>/``, then runs ``crictl runp``,
``create`` and ``start`` and prints the pod id, container id and pod IP.

Every crictl call names dockless's own ``crictl.yaml`` with ``--config``, so crictl talks to
dockless's containerd whatever the user's default config says.

crictl output relied upon (cri-tools ``cmd/crictl``): ``runp`` and ``create`` print the new
id on a line of its own, ``start`` echoes the container id; ``inspectp -o json`` prints
``{"info": …, "status": {…, "network": {"ip": …}}}``; ``pods -o json`` prints
``{"items": [{"id", "metadata": {"name", "namespace", …}, "state", …}]}``; ``ps -o json``
prints ``{"containers": [{"id", "podSandboxId", "metadata": {"name"}, "state", …}]}``;
``inspecti`` exits non-zero for an image containerd does not have.
"""
from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from invoke import Context, Exit, task

from dockless import hookimpl
from dockless.namespace import session_for
from dockless.taskargs import plain_values
from plugins._paths import TEMPLATES

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session

#: Keeps a Windows container running with what Nano Server has: cmd.exe and ping.exe.
WINDOWS_COMMAND = ["cmd", "/c", "ping -t localhost > NUL"]
#: Keeps a Linux (busybox) container running.
LINUX_COMMAND = ["sleep", "3600"]
#: Files libcni loads from the conf dir; containerd uses the alphabetically first one.
CONF_SUFFIXES = (".conf", ".conflist", ".json")
PROTOCOLS = {"tcp": 0, "udp": 1, "sctp": 2}  # CRI Protocol enum values (crictl decodes numbers)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_FATAL_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
_CMD_SPECIAL = set(' \t"&|<>^()%!')


# --------------------------------------------------------------------------------------------
# crictl command lines
# --------------------------------------------------------------------------------------------


def windows_arg(arg: str) -> str:
    """One argument for a Windows command line (CommandLineToArgvW rules), quoted when it has
    blanks, quotes or cmd.exe operators."""
    if arg and not any(ch in _CMD_SPECIAL for ch in arg):
        return arg
    out, slashes = ['"'], 0
    for ch in arg:
        if ch == "\\":
            slashes += 1
            continue
        out.append("\\" * (2 * slashes + 1) + '"' if ch == '"' else "\\" * slashes + ch)
        slashes = 0
    out.append("\\" * (2 * slashes) + '"')
    return "".join(out)


@dataclass(frozen=True)
class Crictl:
    """crictl as this session runs it: the binary dockless installed and its crictl.yaml."""

    exe: str
    config: str
    windows: bool

    def argv(self, *args: str) -> list[str]:
        return [self.exe, "--config", self.config, *args]

    def line(self, *args: str) -> str:
        argv = self.argv(*args)
        return " ".join(windows_arg(a) for a in argv) if self.windows else shlex.join(argv)


def crictl_for(session: Session, *, check: bool = True) -> Crictl:
    """The crictl of the layout; with ``check`` an Exit names what is missing and the fix."""
    lay = session.layout
    exe, config = session.local(lay.exe("crictl")), session.local(lay.crictl_config)
    if check and not session.dry:
        if session.settings.target != session.settings.host and session.settings.fs_root is None:
            raise Exit(f"pods run on the {session.settings.target} host itself; this is a "
                       f"{session.settings.host} machine", 2)
        for path, target, step in ((exe, lay.exe("crictl"), "crictl.install"),
                                   (config, lay.crictl_config, "crictl.config")):
            if not path.is_file():
                raise Exit(f"{target} is missing: run `invoke setup` (or `invoke {step}`) first", 1)
    return Crictl(str(exe), str(config), session.settings.target == "windows")


def _reason(result: Any) -> str:
    text = ((getattr(result, "stderr", "") or "") + "\n" + (getattr(result, "stdout", "") or "")).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return f"exit {getattr(result, 'exited', '?')}"
    for line in reversed(lines):  # crictl: time="…" level=fatal msg="…"
        m = _FATAL_MSG.search(line)
        if m:
            return m.group(1).replace('\\"', '"')
    return lines[-1].strip()


def run_crictl(c: Context, cli: Crictl, *args: str, what: str, **kwargs: Any) -> Any:
    """Run one crictl command; a failure becomes an Exit naming ``what`` and crictl's reason."""
    kwargs.setdefault("hide", True)
    result = c.run(cli.line(*args), warn=True, **kwargs)
    if result is not None and not result.ok:
        raise Exit(f"{what} failed: {_reason(result)}", 1)
    return result


def _json_out(result: Any, what: str) -> Any:
    try:
        return json.loads(result.stdout)
    except (AttributeError, ValueError) as exc:
        raise Exit(f"{what}: crictl printed no JSON ({exc})", 1) from None


def _id_out(result: Any, what: str) -> str:
    lines = [ln.strip() for ln in (result.stdout or "").splitlines() if ln.strip()]
    if not lines or not re.fullmatch(r"[0-9a-f]{12,64}", lines[-1]):
        raise Exit(f"{what}: crictl printed no id ({(result.stdout or '').strip()!r})", 1)
    return lines[-1]


# --------------------------------------------------------------------------------------------
# finding pods and containers
# --------------------------------------------------------------------------------------------


def list_pods(c: Context, cli: Crictl) -> list[dict[str, Any]]:
    return list(_json_out(run_crictl(c, cli, "pods", "-o", "json", what="crictl pods"),
                          "crictl pods").get("items") or [])


def list_containers(c: Context, cli: Crictl, pod_id: str | None = None, *,
                    all_states: bool = False) -> list[dict[str, Any]]:
    args = ["ps"] + (["-a"] if all_states else []) + ["-o", "json"]
    if pod_id:
        args += ["--pod", pod_id]
    return list(_json_out(run_crictl(c, cli, *args, what="crictl ps"), "crictl ps").get("containers") or [])


def _meta(item: dict[str, Any], key: str) -> str:
    return str((item.get("metadata") or {}).get(key) or "")


def matching_pods(pods: list[dict[str, Any]], name: str, namespace: str | None) -> list[dict[str, Any]]:
    return [p for p in pods if _meta(p, "name") == name and (not namespace or _meta(p, "namespace") == namespace)]


def find_pod(c: Context, cli: Crictl, name: str, namespace: str | None) -> dict[str, Any]:
    """The one pod called ``name`` (in ``namespace`` if given), or an Exit."""
    found = matching_pods(list_pods(c, cli), name, namespace)
    where = f" in namespace {namespace}" if namespace else ""
    if not found:
        raise Exit(f"no pod named {name!r}{where}; `invoke pod.list` shows the pods", 1)
    spaces = sorted({_meta(p, "namespace") for p in found})
    if len(spaces) > 1:
        raise Exit(f"pods named {name!r} exist in namespaces {', '.join(spaces)}; choose one with --namespace", 2)
    return found[0]


def pod_container(c: Context, cli: Crictl, pod: dict[str, Any], container: str | None, *,
                  running: bool) -> dict[str, Any]:
    items = list_containers(c, cli, pod["id"], all_states=not running)
    if container:
        items = [x for x in items if _meta(x, "name") == container]
    if not items:
        state = "running " if running else ""
        raise Exit(f"pod {_meta(pod, 'name')!r} has no {state}container"
                   + (f" named {container!r}" if container else ""), 1)
    return items[0]


# --------------------------------------------------------------------------------------------
# the active CNI conf
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveConf:
    """The CNI conf containerd uses (the alphabetically first in the conf dir)."""

    path: PurePath
    network: str
    port_mappings: bool
    subnet: str | None


def _conf_plugins(conf: dict[str, Any]) -> list[dict[str, Any]]:
    plugins = conf.get("plugins")
    if isinstance(plugins, list):
        return [p for p in plugins if isinstance(p, dict)]
    return [conf]


def _subnet(plugin: dict[str, Any]) -> str | None:
    ipam = plugin.get("ipam")
    if not isinstance(ipam, dict):
        return None
    if ipam.get("subnet"):
        return str(ipam["subnet"])
    ranges = ipam.get("ranges")
    try:
        return str(ranges[0][0]["subnet"])
    except (TypeError, IndexError, KeyError):
        return None


def active_cni_conf(session: Session) -> ActiveConf | None:
    """Read the conf containerd will use; ``None`` when the conf dir holds none."""
    conf_dir = session.layout.cni_conf_dir
    local = session.local(conf_dir)
    if not local.is_dir():
        return None
    files = sorted(p for p in local.iterdir() if p.suffix in CONF_SUFFIXES and p.is_file())
    if not files:
        return None
    target = conf_dir / files[0].name
    try:
        conf = json.loads(files[0].read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Exit(f"{target}: not a UTF-8 JSON CNI conf ({exc}); containerd cannot load it either; "
                   f"re-run `invoke cni.config`", 1) from None
    if not isinstance(conf, dict):
        raise Exit(f"{target}: not a CNI conf (a JSON object)", 1)
    plugins = _conf_plugins(conf)
    ports = any(isinstance(p.get("capabilities"), dict) and p["capabilities"].get("portMappings") is True
                for p in plugins)
    subnet = next((s for s in (_subnet(p) for p in plugins) if s), None)
    return ActiveConf(target, str(conf.get("name") or ""), ports, subnet)


# --------------------------------------------------------------------------------------------
# options → spec values
# --------------------------------------------------------------------------------------------


def _check_name(value: str, option: str) -> str:
    if not _DNS_LABEL.match(value or ""):
        raise Exit(f"--{option} {value!r}: use a DNS label (lower-case letters, digits and '-', "
                   f"at most 63 characters), e.g. web-1", 2)
    return value


def parse_port(text: str) -> dict[str, int]:
    """``"8080:80"``, ``"8080:80/udp"`` → a CRI PortMapping (protocol as the enum number)."""
    spec, _, proto = text.strip().partition("/")
    parts = spec.split(":")
    bad = Exit(f"--port {text!r}: use HOST:CONTAINER[/tcp|udp|sctp], e.g. 8080:80", 2)
    if len(parts) != 2 or proto.lower() not in ("", *PROTOCOLS):
        raise bad
    try:
        host, container = int(parts[0]), int(parts[1])
    except ValueError:
        raise bad from None
    if not (0 < host <= 65535 and 0 < container <= 65535):
        raise Exit(f"--port {text!r}: ports are 1 to 65535", 2)
    return {"container_port": container, "host_port": host, "protocol": PROTOCOLS[proto.lower() or "tcp"]}


def parse_pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Exit(f"--{option} {item!r}: use KEY=VALUE", 2)
        pairs.append((key.strip(), value))
    return pairs


def parse_command(text: str, target: str) -> list[str]:
    """A command option as argv: a JSON list as is; else split like the target's shell does
    (Windows: quotes group words and backslashes stay)."""
    text = text.strip()
    if text.startswith("["):
        try:
            argv = json.loads(text)
        except ValueError as exc:
            raise Exit(f"--command {text!r}: not a JSON list ({exc})", 2) from None
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise Exit(f"--command {text!r}: use a JSON list of strings, e.g. [\"cmd\", \"/c\", \"dir\"]", 2)
        return argv
    try:
        if target == "windows":
            words = shlex.split(text, posix=False)
            return [w[1:-1] if len(w) > 1 and w[0] == w[-1] == '"' else w for w in words]
        return shlex.split(text)
    except ValueError as exc:
        raise Exit(f"--command {text!r}: {exc}", 2) from None


def _load_spec(path: str, option: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise Exit(f"--{option} {path}: no such file", 2) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise Exit(f"--{option} {path}: not valid JSON ({exc})", 2) from None
    if not isinstance(data, dict):
        raise Exit(f"--{option} {path}: the spec must be a JSON object", 2)
    return data


def _render(template: str, **context: Any) -> dict[str, Any]:
    from dockless.render import render

    return json.loads(render(TEMPLATES / "pods", template, **context))


def spec_bytes(spec: dict[str, Any]) -> bytes:
    return (json.dumps(spec, indent=2) + "\n").encode("utf-8")


# --------------------------------------------------------------------------------------------
# planning a pod
# --------------------------------------------------------------------------------------------


@dataclass
class PodPlan:
    """Everything ``pod.create`` decided before the first crictl call."""

    name: str
    namespace: str
    pod: dict[str, Any]
    container: dict[str, Any]
    image: str
    runtime_handler: str
    state_dir: PurePath
    log_dir: PurePath
    conf: ActiveConf | None
    notes: list[str]

    @property
    def pod_file(self) -> PurePath:
        return self.state_dir / "pod.json"

    @property
    def container_file(self) -> PurePath:
        return self.state_dir / "container.json"


def _windows_choice(session: Session, image: str | None, isolation: str | None) -> Any:
    """Image and runtime handler for this Windows host (C10), the pause image checked too."""
    from dockless.winimages import ImageMismatch, check_sandbox_image, choose_image

    build, edition = int(session.host("windows_build")), str(session.host("edition"))
    try:
        choice = choose_image(build, edition, image=image or None, isolation=isolation or None)
        sandbox = session.config("containerd")["sandbox_image"] if session.active("containerd") else None
        if sandbox:
            check_sandbox_image(build, edition, image=sandbox, isolation=choice.isolation)
    except ImageMismatch as exc:
        raise Exit(f"pod.create: {exc}", 2) from None
    except ValueError as exc:  # an isolation/handler name dockless does not know
        raise Exit(f"pod.create: {exc}", 2) from None
    return choice


def _isolation(isolation: str, runtime: str, session: Session) -> str:
    wanted = [v for v in (isolation, runtime, session.config("pods")["isolation"]) if v]
    if isolation and runtime:
        from dockless.winimages import normalize_isolation

        try:
            same = normalize_isolation(isolation) == normalize_isolation(runtime)
        except ValueError as exc:
            raise Exit(f"pod.create: {exc}", 2) from None
        if not same:
            raise Exit(f"--isolation {isolation} and --runtime {runtime} disagree; give one of them", 2)
    return wanted[0] if wanted else ""


def plan_pod(
    session: Session,
    *,
    name: str,
    namespace: str = "",
    image: str = "",
    command: str = "",
    ports: list[str] | None = None,
    isolation: str = "",
    runtime: str = "",
    envs: list[str] | None = None,
    labels: list[str] | None = None,
    pod_spec: str = "",
    container_spec: str = "",
) -> PodPlan:
    """Render (or load) and check both specs; raises Exit before anything runs."""
    from dockless.podspec import container_problems, pod_problems

    target = session.settings.target
    cfg = session.config("pods")
    name = _check_name(name, "name")
    if namespace:
        _check_name(namespace, "namespace")
    port_maps = [parse_port(p) for p in ports or []]
    env_list = [{"key": k, "value": v} for k, v in parse_pairs(envs or [], "env")]
    label_map = dict(parse_pairs(labels or [], "label"))
    notes: list[str] = []

    user_pod = _load_spec(pod_spec, "pod-spec") if pod_spec else None
    user_ctr = _load_spec(container_spec, "container-spec") if container_spec else None
    if user_pod is not None and (port_maps or label_map):
        raise Exit("--port/--label go into the rendered pod.json; with --pod-spec put them in your file", 2)
    if user_ctr is not None and (image or command or env_list):
        raise Exit("--image/--command/--env go into the rendered container.json; with "
                   "--container-spec put them in your file", 2)
    if user_pod is not None:
        meta = user_pod.get("metadata") if isinstance(user_pod.get("metadata"), dict) else {}
        if meta.get("name") and meta["name"] != name:
            raise Exit(f"--pod-spec {pod_spec}: metadata.name is {meta['name']!r}, not {name!r}; "
                       f"name the pod as the file does", 2)
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise Exit(f"--pod-spec {pod_spec}: metadata.namespace is {meta['namespace']!r}, "
                       f"not {namespace!r}", 2)
        namespace = namespace or str(meta.get("namespace") or "")
    namespace = namespace or cfg["namespace"]

    state_dir = session.layout.dockless_dir / "pods" / name
    log_dir = state_dir / "logs"
    if user_pod is not None and isinstance(user_pod.get("log_directory"), str) and user_pod["log_directory"]:
        log_dir = type(state_dir)(user_pod["log_directory"])

    # the image and how it runs
    handler = ""
    if target == "windows":
        wanted_image = image or (_container_image(user_ctr) if user_ctr is not None else "") or cfg["windows_image"]
        choice = _windows_choice(session, wanted_image, _isolation(isolation, runtime, session))
        ref, handler = choice.image, choice.runtime_handler
        mode = "process isolation" if choice.isolation == "process" else "Hyper-V isolation"
        notes.append(f"image {ref} with {mode} (runtime handler {handler}) on host build "
                     f"{session.host('windows_build')} ({session.host('edition')})")
    else:
        if isolation:
            raise Exit("--isolation is for Windows targets; on Linux name a runtime handler with --runtime", 2)
        ref = image or (_container_image(user_ctr) if user_ctr is not None else "") or cfg["linux_image"] \
            or (session.config("images")["smoke_image"] if session.active("images") else "")
        handler = runtime or cfg["isolation"]
        from dockless.winimages import image_build

        if ref and image_build(ref) is not None:
            raise Exit(f"pod.create: {ref} is a Windows image; Linux targets need Linux images, "
                       f"e.g. docker.io/library/busybox", 2)

    # the specs
    if user_pod is None:
        pod = _render("pod.json.j2", target=target, name=name, namespace=namespace,
                      uid=f"dockless-{namespace}-{name}", log_directory=str(log_dir),
                      port_mappings=port_maps, labels=label_map)
    else:
        pod = user_pod
    if user_ctr is None:
        argv = parse_command(command, target) if command else (WINDOWS_COMMAND if target == "windows" else LINUX_COMMAND)
        container = _render("container.json.j2", target=target, name=name, image=ref, command=argv,
                            envs=env_list, log_path=f"{name}.log", labels=label_map)
    else:
        container = user_ctr

    conf = active_cni_conf(session)
    problems = pod_problems(pod, target, source=pod_spec or "pod.json",
                            port_mappings_supported=conf.port_mappings if conf else True)
    problems += _pod_metadata_problems(pod, pod_spec or "pod.json")
    problems += container_problems(container, target, source=container_spec or "container.json")
    if problems:
        raise Exit("pod.create: the specs would fail in crictl/containerd:\n  - "
                   + "\n  - ".join(problems), 2)
    return PodPlan(name, namespace, pod, container, ref, handler, state_dir, log_dir, conf, notes)


def _container_image(spec: dict[str, Any] | None) -> str:
    image = (spec or {}).get("image")
    return str(image.get("image") or "") if isinstance(image, dict) else ""


def _pod_metadata_problems(spec: Any, source: str) -> list[str]:
    """crictl refuses a pod.json without metadata.namespace or metadata.uid."""
    meta = spec.get("metadata") if isinstance(spec, dict) else None
    if not isinstance(meta, dict) or not meta.get("name"):
        return []  # podspec reports the missing name
    return [f"{source}: metadata.{key} is missing; crictl refuses a pod without it, e.g. "
            f"\"{key}\": {json.dumps(example)}"
            for key, example in (("namespace", "default"), ("uid", f"{meta['name']}-1"))
            if not meta.get(key)]


def write_plan(session: Session, plan: PodPlan) -> None:
    """Keep the specs where users can read them and create the log directory (before runp)."""
    state = session.local(plan.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    session.local(plan.pod_file).write_bytes(spec_bytes(plan.pod))
    session.local(plan.container_file).write_bytes(spec_bytes(plan.container))
    session.local(plan.log_dir).mkdir(parents=True, exist_ok=True)


def _pod_ip(status: Any) -> str:
    if isinstance(status, list):  # several ids: crictl prints a list
        status = status[0] if status else {}
    network = ((status or {}).get("status") or {}).get("network") or {}
    return str(network.get("ip") or "")


# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------


@task(
    iterable=["port", "env", "label"],
    auto_shortflags=False,
    help={
        "name": "pod name (a DNS label); also the container's name and the folder of its specs",
        "namespace": "pod namespace (default: [pods] namespace, 'default')",
        "image": "image (Windows default: the nanoserver tag that runs on this host; Linux: [pods] linux_image)",
        "command": "container command: a JSON list, or words (Windows default: a ping loop; Linux: sleep 3600)",
        "port": "HOST:CONTAINER[/tcp|udp|sctp] port mapping (repeatable; needs the CNI portMappings capability)",
        "isolation": "Windows: process or hyperv (default: what works on this host)",
        "runtime": "runtime handler for `crictl runp --runtime` (Windows: runhcs-wcow-process/-hypervisor)",
        "env": "KEY=VALUE environment variable (repeatable)",
        "label": "KEY=VALUE label on the pod and the container (repeatable)",
        "pod-spec": "your own pod.json instead of the template (checked the same way)",
        "container-spec": "your own container.json instead of the template (checked the same way)",
        "print-specs": "print the checked pod.json and container.json and stop",
    },
)
def create(c: Context, name: str, namespace: str = "", image: str = "", command: str = "",
           port: list[str] | None = None, isolation: str = "", runtime: str = "",
           env: list[str] | None = None, label: list[str] | None = None, pod_spec: str = "",
           container_spec: str = "", print_specs: bool = False) -> None:
    """Create and start a pod with one container (crictl runp, create, start); print its IP."""
    plain_values("pod.create", name=(name, "a pod name"), namespace=(namespace, "a namespace"),
                 image=(image, "an image reference"), command=(command, "a command"),
                 port=(port, "a HOST:CONTAINER port mapping"), isolation=(isolation, "process or hyperv"),
                 runtime=(runtime, "a runtime handler"), env=(env, "a KEY=VALUE pair"),
                 label=(label, "a KEY=VALUE pair"), pod_spec=(pod_spec, "a pod.json file"),
                 container_spec=(container_spec, "a container.json file"))
    session = session_for(c)
    plan = plan_pod(session, name=name, namespace=namespace, image=image, command=command, ports=port,
                    isolation=isolation, runtime=runtime, envs=env, labels=label,
                    pod_spec=pod_spec, container_spec=container_spec)
    for note in plan.notes + [f"assumed: {a}" for a in session.assumptions]:
        session.console.print(f"  {note}", markup=False)
    if print_specs:
        print(f"# {plan.pod_file}\n{spec_bytes(plan.pod).decode()}# {plan.container_file}\n"
              f"{spec_bytes(plan.container).decode()}", end="")
        return
    cli = crictl_for(session)
    pod_file, ctr_file = str(session.local(plan.pod_file)), str(session.local(plan.container_file))
    runp = ["runp"] + (["--runtime", plan.runtime_handler] if plan.runtime_handler else []) + [pod_file]
    if session.dry:
        for args in (["pods", "-o", "json"], ["inspecti", "-q", plan.image], runp,
                     ["create", "<pod-id>", ctr_file, pod_file], ["start", "<container-id>"],
                     ["inspectp", "-o", "json", "<pod-id>"]):
            print(f"[dry] {cli.line(*args)}")
        return
    if plan.conf is None:
        raise Exit(f"no CNI conf in {session.layout.cni_conf_dir}: pods get no network; "
                   f"run `invoke setup` (cni.config) first", 1)

    existing = matching_pods(list_pods(c, cli), plan.name, None)  # the specs folder is per name
    if existing:
        raise Exit(f"pod {plan.name!r} already exists in namespace {_meta(existing[0], 'namespace')} "
                   f"(id {existing[0]['id'][:13]}); remove it with `invoke pod.rm {plan.name}`", 1)
    write_plan(session, plan)
    if not c.run(cli.line("inspecti", "-q", plan.image), hide=True, warn=True).ok:
        session.console.print(f"  pulling {plan.image}")
        run_crictl(c, cli, "pull", plan.image, what=f"pulling {plan.image}")

    pod_id = _id_out(run_crictl(c, cli, *runp, what=f"crictl runp {plan.pod_file}"), "crictl runp")
    try:
        ctr_id = _id_out(run_crictl(c, cli, "create", pod_id, ctr_file, pod_file,
                                    what=f"crictl create {plan.container_file}"), "crictl create")
        run_crictl(c, cli, "start", ctr_id, what=f"starting container {ctr_id[:13]}")
    except Exit as exc:
        c.run(cli.line("rmp", "-f", pod_id), hide=True, warn=True)
        raise Exit(f"{exc.message}\nremoved the half-made pod {pod_id[:13]}; the specs are kept in "
                   f"{plan.state_dir}", exc.code) from None
    ip = _pod_ip(_json_out(run_crictl(c, cli, "inspectp", "-o", "json", pod_id,
                                      what="crictl inspectp"), "crictl inspectp"))
    conf = plan.conf
    network = f" (network {conf.network}" + (f", {conf.subnet})" if conf.subnet else ")")
    print(f"pod {plan.name} is running (namespace {plan.namespace})")
    print(f"  pod id:       {pod_id}")
    print(f"  container id: {ctr_id}")
    print(f"  pod IP:       {ip or '(none)'}{network}")
    print(f"  specs:        {plan.state_dir}")
    if not ip:
        session.warn(f"the pod has no IP: check the CNI conf {conf.path}")
    elif conf.subnet and not _in_subnet(ip, conf.subnet):
        session.warn(f"pod IP {ip} is outside {conf.subnet}, the subnet of {conf.path}")


def stdin_is_tty() -> bool:
    try:
        return bool(sys.stdin is not None and sys.stdin.isatty())
    except (AttributeError, ValueError):  # replaced or closed stdin
        return False


def _in_subnet(ip: str, subnet: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return False


@task(name="list")
def list_(c: Context) -> None:
    """List the pods containerd has, with their containers."""
    session = session_for(c)
    cli = crictl_for(session)
    pods = list_pods(c, cli)
    if not pods:
        print("no pods")
        return
    containers = list_containers(c, cli, all_states=True)
    rows = [("POD ID", "NAME", "NAMESPACE", "STATE", "CONTAINERS")]
    for pod in pods:
        mine = [f"{_meta(x, 'name')}:{str(x.get('state', '')).removeprefix('CONTAINER_').lower()}"
                for x in containers if x.get("podSandboxId") == pod.get("id")]
        state = str(pod.get("state", "")).removeprefix("SANDBOX_").lower()
        rows.append((str(pod.get("id", ""))[:13], _meta(pod, "name"), _meta(pod, "namespace"),
                     state, ", ".join(mine) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1])


@task(
    name="exec",
    help={
        "name": "pod name",
        "command": "command line, run by the container's shell (Windows: cmd /c, Linux: sh -c); "
                   "default: an interactive shell",
        "namespace": "pod namespace (when the name is in several)",
        "container": "container name (default: the pod's first running container)",
    },
)
def exec_(c: Context, name: str, command: str = "", namespace: str = "", container: str = "") -> None:
    """Run a command in the pod's container (interactive -it when stdin is a terminal)."""
    plain_values("pod.exec", name=(name, "a pod name"), command=(command, "a command"),
                 namespace=(namespace, "a namespace"), container=(container, "a container name"))
    session = session_for(c)
    windows = session.settings.target == "windows"
    tty = stdin_is_tty()
    if not command and not tty:
        raise Exit("pod.exec: no --command and stdin is not a terminal; pass --command", 2)
    cli = crictl_for(session)
    pod = find_pod(c, cli, name, namespace or None)
    ctr = pod_container(c, cli, pod, container or None, running=True)
    if command:
        argv = ["cmd", "/c", command] if windows else ["sh", "-c", command]
    else:
        argv = ["cmd"] if windows else ["sh"]
    flags = ["-i", "-t"] if tty else []
    args = ["exec", *flags, ctr["id"], *argv]
    if tty and sys.platform == "win32" and not session.dry:
        # invoke has no pty on Windows and gives the child a pipe for stdin, while `crictl exec
        # -t` needs the console itself ("input is not a terminal"): hand it over directly.
        import subprocess

        code = subprocess.call(cli.argv(*args))
    else:
        result = c.run(cli.line(*args), hide=False, warn=True, pty=tty)
        code = 0 if result is None or result.ok else (result.exited or 1)
    if code:
        raise Exit(code=code)


@task(
    help={
        "name": "pod name",
        "follow": "keep printing new lines",
        "tail": "only the last N lines",
        "namespace": "pod namespace (when the name is in several)",
        "container": "container name (default: the pod's first container)",
    },
)
def logs(c: Context, name: str, follow: bool = False, tail: int = -1, namespace: str = "",
         container: str = "") -> None:
    """Print the logs of the pod's container (crictl logs)."""
    plain_values("pod.logs", name=(name, "a pod name"), namespace=(namespace, "a namespace"),
                 container=(container, "a container name"))
    session = session_for(c)
    cli = crictl_for(session)
    pod = find_pod(c, cli, name, namespace or None)
    ctr = pod_container(c, cli, pod, container or None, running=False)
    args = ["logs"] + (["--follow"] if follow else []) + (["--tail", str(tail)] if tail >= 0 else [])
    run_crictl(c, cli, *args, ctr["id"], what=f"logs of {name}", hide=False)


@task(
    help={
        "name": "pod name",
        "namespace": "pod namespace (default: every pod of that name)",
    },
)
def rm(c: Context, name: str, namespace: str = "") -> None:
    """Stop and remove the pod and its containers, and the specs and logs dockless kept."""
    plain_values("pod.rm", name=(name, "a pod name"), namespace=(namespace, "a namespace"))
    session = session_for(c)
    _check_name(name, "name")
    cli = crictl_for(session)
    pods = matching_pods(list_pods(c, cli), name, namespace or None)
    state_dir = session.layout.dockless_dir / "pods" / name
    local_state = session.local(state_dir)
    if not pods and not local_state.exists():
        raise Exit(f"no pod named {name!r}" + (f" in namespace {namespace}" if namespace else ""), 1)
    for pod in pods:
        run_crictl(c, cli, "stopp", pod["id"], what=f"stopping pod {pod['id'][:13]}")
        run_crictl(c, cli, "rmp", "-f", pod["id"], what=f"removing pod {pod['id'][:13]}")
        print(f"removed pod {name} ({pod['id'][:13]}, namespace {_meta(pod, 'namespace')}) and its containers")
    if local_state.exists():
        try:
            shutil.rmtree(local_state)
        except OSError as exc:
            session.warn(f"could not remove all of {state_dir}: {exc}")
        else:
            print(f"removed {state_dir}")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    from dockless.model import Component, Setting, image_reference, non_empty, optional

    registry.add(Component(
        name="pods", steps=(),
        settings={
            "namespace": Setting("default", "namespace of pods pod.create makes", kind=str, check=non_empty),
            "linux_image": Setting("", "pod image on Linux (empty: [images] smoke_image)", kind=str,
                                   check=optional(image_reference)),
            "windows_image": Setting("", "pod image on Windows (empty: the nanoserver tag that runs on this host)",
                                     kind=str, check=optional(image_reference)),
            "isolation": Setting("", "Windows: process or hyperv (empty: what works on this host); "
                                     "on Linux name a runtime handler with pod.create --runtime",
                                 choices=("", "process", "hyperv")),
        },
        templates=TEMPLATES / "pods",
        description="pod tasks through crictl (no install steps)",
    ))
    registry.add_tasks("pod", create, list_, exec_, logs, rm)
