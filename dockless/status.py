"""``status``: per component the installed vs the pinned version, the state of each file dockless
wrote (ours / edited / missing), what ``setup`` would still change, the service and the network.
"""
from __future__ import annotations

from typing import Any

from dockless.actions import Install, StepFailed, Warn
from dockless.hoststate import cni_component, cni_confs, component_steps, dockless_conf, file_states, probed
from dockless.session import Session


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
    from plugins.containerd_service import running_pid, socket_answers

    lay = session.layout
    if session.settings.target == "windows":
        probe = probed(session, "containerd.service")
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
        probe = probed(session, "hns.network")
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
