"""Windows Defender: a process exclusion for exactly the installed containerd.exe (field case C05).

Real-time protection is never switched off; where Defender is absent or its cmdlets are blocked,
the step warns and setup goes on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl, powershell
from dockless.actions import Action, PowerShell, Warn
from dockless.model import Component, Setting, Step
from dockless.namespace import run_step
from dockless.powershell import quote

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session

PROBE = r"""
if (-not (Get-Command Get-MpPreference -ErrorAction SilentlyContinue)) {
    [ordered]@{ available = $false; exclusions = @() }
} else {
    $pref = Get-MpPreference
    [ordered]@{ available = $true; exclusions = @($pref.ExclusionProcess | Where-Object { $_ }) }
}
"""

#: What Get-MpPreference shows instead of the exclusion lists when they are hidden (policy
#: HideExclusionsFromLocalAdmins; older builds spell it "Must be and administrator").
HIDDEN = "N/A: Must be a"


def target(session: Session) -> str:
    return str(session.layout.exe("containerd"))


def plan_exclude(session: Session) -> list[Action]:
    if not session.config("defender")["enabled"]:
        return []
    exe = target(session)
    probe: Any = session.probe("defender.exclude")
    notes: list[Action] = []
    if isinstance(probe, dict):
        if "error" in probe:
            return [Warn(f"Windows Defender preferences cannot be read ({probe['error']}); no exclusion added for {exe}")]
        if not probe.get("available"):
            return [Warn(f"Windows Defender is not available on this host; no exclusion needed for {exe}")]
        exclusions = [str(e) for e in powershell.as_list(probe.get("exclusions"))]
        if any(e.lower() == exe.lower() for e in exclusions):
            return []
        if any(e.startswith(HIDDEN) for e in exclusions):
            # a policy (HideExclusionsFromLocalAdmins) hides the list: trust what dockless added
            if session.manifest.has_record("exclusion", exe):
                return []
            notes.append(Warn(f"Windows Defender hides its exclusion list on this host (policy); adding {exe} unchecked"))
    script = f"Add-MpPreference -ExclusionProcess {quote(exe)}\n"
    return notes + [PowerShell(script, f"add a Defender process exclusion for {exe}", record=("exclusion", exe))]


def undo_exclude(session: Session) -> list[Action]:
    exe = target(session)
    if not session.manifest.has_record("exclusion", exe):
        return []
    return [PowerShell(f"Remove-MpPreference -ExclusionProcess {quote(exe)}\n", f"remove the Defender exclusion for {exe}")]


def exclude(c: Context) -> None:
    """Add a Windows Defender process exclusion for the installed containerd.exe."""
    run_step(c, "defender.exclude")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name="defender", platforms=("windows",), requires=("containerd",),
        steps=(Step("exclude", plan_exclude, exclude, platforms=("windows",), probe=PROBE, undo=undo_exclude),),
        settings={"enabled": Setting(True, "add the Defender process exclusion (false: leave Defender alone)", (True, False))},
        description="Windows Defender exclusion for containerd.exe",
    ))
