"""What a fresh user's slips must not do: an option taken as a task's value (`invoke bundle --help`),
an offline setup, image tasks before setup, a file of the user's at a path dockless writes or
installs to, a containerd that fails after it was started. Each is one line naming the input and
the fix, a non-zero exit, nothing changed on disk. No network: the "mirror" is a closed port.

The Linux-lane halves (real containerd) are in tests/test_lifecycle.py.
"""
from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import invoke
import pytest
from invoke import Exit, MockContext, Result

from dockless.actions import Install, StepFailed, Warn
from dockless.namespace import build_namespace, load
from dockless.session import Session
from dockless.settings import load_settings
from dockless.testing.processes import alive

REPO = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the block ends: nothing listens there


def cli(tmp_path: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS`` for a Linux target under ``tmp_path/root``, from ``tmp_path`` (so that a
    task that took ``--help`` as a folder would create it there, not in the repo)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKLESS_")}
    base.update({
        "DOCKLESS_TARGET": "linux", "DOCKLESS_ROOT": str(tmp_path / "root"), "DOCKLESS_SERVICE": "process",
        "DOCKLESS_CACHE": str(tmp_path / "cache"), "DOCKLESS_MIRROR": f"http://127.0.0.1:{closed_port()}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    })
    base.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], cwd=tmp_path,
                          env=base, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code and "Traceback" not in proc.stderr, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def linux_session(tmp_path: Path, *, dry: bool = True, force: bool = False, context: Any = None) -> Session:
    env = {"DOCKLESS_TARGET": "linux", "DOCKLESS_ROOT": str(tmp_path / "root"), "DOCKLESS_SERVICE": "process",
           "DOCKLESS_CONFIG": str(tmp_path / "dockless.toml")}
    (tmp_path / "dockless.toml").write_text("")
    settings = load_settings(environ=env, cwd=tmp_path)
    if force:
        settings = settings.with_flags(force=True)
    settings, registry, _pm = load(settings, entry_points=False)
    return Session(context or MockContext(), settings, registry, dry=dry)


# -- 3. an option taken as a task's value ----------------------------------------------------------------
def string_arguments(task: invoke.Task) -> list[str]:
    """The arguments of a task that take a string (or a list of them): positional ones and those
    whose default is a string or None."""
    params = list(inspect.signature(task.body).parameters.values())[1:]
    return [p.name for p in params
            if p.default is inspect.Parameter.empty or p.default is None or isinstance(p.default, str)
            or p.name in task.iterable]


def every_task() -> dict[str, invoke.Task]:
    from dockless.demo import demo

    found = {}
    for target in ("linux", "windows"):
        ns = build_namespace(load_settings({"DOCKLESS_TARGET": target}), entry_points=False)
        ns.add_task(demo)  # tasks.py adds it in the repo
        found.update({name: ns[name] for name in ns.task_names})
    return found


def test_every_task_refuses_an_option_as_a_string_value_before_doing_anything() -> None:
    """`invoke bundle --help` used to download for 8 s into a folder named --help; `pod.rm --help`
    looked for a pod named --help. Found here from the namespace, so a new task cannot forget it."""
    checked = []
    for name, task in every_task().items():
        for arg in string_arguments(task):
            required = [p.name for p in list(inspect.signature(task.body).parameters.values())[1:]
                        if p.default is inspect.Parameter.empty and p.name != arg]
            kwargs: dict[str, Any] = {r: "x" for r in required}
            kwargs[arg] = ["--help"] if arg in task.iterable else "--help"
            with pytest.raises(Exit) as refused:
                task.body(MockContext(), **kwargs)  # a MockContext: any command run would fail the test
            assert refused.value.code == 2, (name, arg)
            message = str(refused.value.message)
            assert message.startswith(f"{name}: '--help' is not ") and message.endswith(
                f"; for help run `invoke --help {name}`") and "\n" not in message, (name, arg, message)
            checked.append(f"{name} --{arg.replace('_', '-')}")
    for expected in ("bundle --directory", "image.pull --ref", "image.import --path", "pod.create --name",
                     "pod.exec --name", "pod.logs --name", "pod.rm --name", "smoke --image", "plan --target",
                     "demo --root", "pod.create --port", "pod.exec --command"):
        assert expected in checked, checked


@pytest.mark.parametrize("task,expected", [
    ("bundle", "bundle: '--help' is not a directory; for help run `invoke --help bundle`"),
    ("image.pull", "image.pull: '--help' is not an image reference; for help run `invoke --help image.pull`"),
    ("pod.rm", "pod.rm: '--help' is not a pod name; for help run `invoke --help pod.rm`"),
])
def test_help_after_a_task_is_one_line_and_runs_nothing(tmp_path: Path, task: str, expected: str) -> None:
    start = time.monotonic()
    assert one_line(cli(tmp_path, task, "--help"), 2) == expected
    assert time.monotonic() - start < 30  # no download, no retries
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no --help folder, no root, no cache


# -- 5. one-line, useful errors ------------------------------------------------------------------------------
def test_offline_setup_is_one_line_naming_the_host_and_the_way_out(tmp_path: Path) -> None:
    port = closed_port()
    line = one_line(cli(tmp_path, "setup", DOCKLESS_MIRROR=f"http://127.0.0.1:{port}",
                        DOCKLESS_DISABLE_PLUGINS="crictl"), 1)
    assert line.startswith("download failed: ") and f"cannot reach 127.0.0.1:{port} (connection refused" in line, line
    assert "DOCKLESS_MIRROR" in line and "HTTPS_PROXY" in line and "..." not in line, line
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").rglob("*"))


def test_a_mirror_folder_that_does_not_exist_is_named(tmp_path: Path) -> None:
    line = one_line(cli(tmp_path, "setup", DOCKLESS_MIRROR=str(tmp_path / "nonexistent")), 2)
    assert str(tmp_path / "nonexistent") in line and "does not exist" in line, line


@pytest.mark.parametrize("args", [("smoke",), ("image.list",), ("image.pull", "docker.io/library/busybox:latest")])
def test_image_tasks_before_setup_say_ctr_is_missing(tmp_path: Path, args: tuple[str, ...]) -> None:
    ctr = tmp_path / "root" / "usr" / "local" / "bin" / "ctr"
    assert one_line(cli(tmp_path, *args), 1) == f"ctr not found at {ctr}: run `invoke setup` first"


# -- 1./2. the user's files ------------------------------------------------------------------------------------
def test_drift_names_a_file_dockless_never_wrote_apart_from_one_it_wrote_and_the_user_changed(tmp_path: Path) -> None:
    session = linux_session(tmp_path, dry=False)
    conf = session.layout.cni_conf_dir / "10-dockless-bridge.conflist"
    local = session.local(conf)
    local.parent.mkdir(parents=True)
    local.write_text('{"mine": true}\n')
    warnings = [a for a in session.plan_step("cni.config") if isinstance(a, Warn)]
    assert len(warnings) == 1 and warnings[0].message.startswith(f"{conf} exists and was not written by dockless; keeping it")
    session.manifest.record_file(str(conf), local, "cni-bridge", "rendered")  # as if dockless wrote it …
    local.write_text('{"edited": true}\n')  # … and the user changed it since
    warnings = [a for a in session.plan_step("cni.config") if isinstance(a, Warn)]
    assert warnings[0].message.startswith(f"{conf} was changed outside dockless; keeping it")


def test_plan_shows_an_install_over_a_file_dockless_did_not_install_as_blocked(tmp_path: Path) -> None:
    session = linux_session(tmp_path)
    runc = session.local(session.layout.exe("runc"))
    runc.parent.mkdir(parents=True)
    runc.write_text("#!/bin/sh\n")
    blocked = {e.task: e.blocked for e in session.plan() if e.blocked}
    assert blocked["runc.install"] == (f"{runc} exists and was not installed by dockless; move it away, or re-run "
                                       f"with --force to replace it (it is kept as runc.<timestamp>.bak and teardown "
                                       f"puts it back)")
    forced = linux_session(tmp_path, force=True)
    install = next(a for a in forced.plan_step("runc.install") if isinstance(a, Install))
    assert install.replaces == (str(runc),) and "move aside " + str(runc) in install.describe()
    assert runc.read_text() == "#!/bin/sh\n"


def test_config_toml_paths_are_checked_against_the_layout(tmp_path: Path) -> None:
    from plugins.containerd_service import check_config_paths

    session = linux_session(tmp_path)
    lay = session.layout
    config = session.local(lay.containerd_config)
    config.parent.mkdir(parents=True)
    good = (f"version = 2\nroot = '{lay.containerd_root}'\nstate = '{lay.containerd_state}'\n"
            f"[grpc]\n  address = '{lay.address}'\n")
    opt = f"[plugins.'io.containerd.internal.v1.opt']\n  path = '{lay.containerd_root}/opt'\n"
    config.write_text(good + opt)
    check_config_paths(session)  # all under the root: fine
    config.write_text(good)  # no opt path: containerd would create /opt/containerd on the host
    with pytest.raises(StepFailed, match=r"path = '/opt/containerd' \(containerd's default, the key is absent\) "
                                         r"is outside DOCKLESS_ROOT"):
        check_config_paths(session)
    config.write_text(good.replace(f"address = '{lay.address}'", "address = '/run/containerd/containerd.sock'") + opt)
    with pytest.raises(StepFailed) as refused:
        check_config_paths(session)
    assert str(refused.value).startswith(f"{lay.containerd_config} sets grpc.address = '/run/containerd/containerd.sock' "
                                         f"but dockless uses '{lay.address}': containerd would run outside")
    check_config_paths(linux_session(tmp_path, force=True))  # --force: containerd.config replaces it first


def test_a_containerd_that_fails_after_it_was_started_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """containerd.service started a process and then failed (here: it never answers): that process
    must not run on."""
    from plugins import containerd_service as svc

    started = subprocess.run(["sh", "-c", "sleep 120 >/dev/null 2>&1 </dev/null & echo $!"],
                             capture_output=True, text=True, check=True)
    pid = int(started.stdout.strip())
    try:
        session = linux_session(tmp_path, dry=False, context=MockContext(run=Result(stdout=f"{pid}\n")))

        def never_answers(_session: Session, _pid: int, timeout: float = 30.0) -> None:
            raise StepFailed(f"containerd did not answer on {session.layout.address} within 30s")

        monkeypatch.setattr(svc, "wait_for_socket", never_answers)
        with pytest.raises(StepFailed, match="did not answer"):
            svc.start_process(session)
        deadline = time.monotonic() + 15
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid) and not svc.pid_file(session).exists()
    finally:
        if alive(pid):
            os.kill(pid, 9)


# -- 6. doctor ------------------------------------------------------------------------------------------------
def test_doctor_encoding_does_not_count_config_files_that_do_not_exist(tmp_path: Path) -> None:
    from dockless.doctor import check_encoding

    [check] = check_encoding(linux_session(tmp_path))
    assert check.ok is None and check.message.startswith("no config files to check"), check
