"""Windows preflight: elevation, OS build, pending reboot, and the Containers/Hyper-V features."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke import Context

from dockless import hookimpl
from dockless.actions import Action, PowerShell, StepFailed
from dockless.model import Component, Step
from dockless.namespace import run_step

if TYPE_CHECKING:  # annotations only: importing the session costs start-up time
    from dockless.session import Session

MIN_BUILD = 17763

HOST_PROBE = r"""
$os = Get-CimInstance Win32_OperatingSystem
$cv = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
$elevated = $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
$pending = (Test-Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending') -or (Test-Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired')
$features = [ordered]@{}
if ($elevated) {
    # DISM cmdlets throw "The requested operation requires elevation" (not silenced by -ErrorAction)
    foreach ($name in @('Containers', 'Microsoft-Hyper-V')) {
        $f = Get-WindowsOptionalFeature -Online -FeatureName $name -ErrorAction SilentlyContinue
        if ($null -eq $f) { $features[$name] = 'Absent' } else { $features[$name] = $f.State.ToString() }
    }
}
[ordered]@{
    windows_build = [int]$cv.CurrentBuildNumber
    windows_ubr = [int]$cv.UBR
    edition = $(if ($os.ProductType -eq 1) { 'client' } else { 'server' })
    caption = $os.Caption
    elevated = $elevated
    reboot_pending = $pending
    user_profile = $env:USERPROFILE
    features = $features
}
"""


def required_features(edition: str) -> list[str]:
    """Containers always; client Windows also needs Hyper-V (server images run isolated there)."""
    return ["Containers", "Microsoft-Hyper-V"] if edition == "client" else ["Containers"]


def plan_check(session: Session) -> list[Action]:
    host: Any = session.probe("host")
    if not isinstance(host, dict):
        session.host("windows_build")
        session.host("edition")
        return []
    if "error" in host:
        raise StepFailed(f"could not read the Windows host facts: {host['error']}")
    if not host.get("elevated"):
        raise StepFailed("dockless must run elevated: open PowerShell with 'Run as administrator' and run it again")
    if int(host["windows_build"]) < MIN_BUILD:
        raise StepFailed(f"Windows build {host['windows_build']} is too old: containers with containerd need build {MIN_BUILD} (Windows Server 2019 / 1809) or newer")
    if host.get("reboot_pending"):
        raise StepFailed("a reboot is pending: reboot, then run `invoke setup` again (it continues where it stopped)")
    return []


def plan_features(session: Session) -> list[Action]:
    host: Any = session.probe("host")
    if not isinstance(host, dict) or "error" in host:
        session.assumptions.append("Windows features Containers (and Microsoft-Hyper-V on client) assumed enabled")
        return []
    edition = host["edition"]
    states = host.get("features") or {}
    missing = [f for f in required_features(edition) if states.get(f) != "Enabled"]
    if not missing:
        return []
    pending = [f for f in missing if states.get(f) == "EnablePending"]
    if pending and len(pending) == len(missing):
        raise StepFailed(f"Windows feature(s) {', '.join(pending)} are enabled but wait for a reboot: reboot, then run `invoke setup` again")
    if not session.flags.get("enable_features"):
        raise StepFailed(f"Windows feature(s) {', '.join(missing)} not enabled: run `invoke setup --enable-features`, then reboot and run it again")
    names = ", ".join(f"'{f}'" for f in missing)
    if edition == "client":
        script = f"Enable-WindowsOptionalFeature -Online -FeatureName {names} -All -NoRestart | Out-Null\n"
    else:
        server_names = ", ".join("'Hyper-V'" if f == "Microsoft-Hyper-V" else f"'{f}'" for f in missing)
        script = f"Install-WindowsFeature -Name {server_names} | Out-Null\n"
    return [PowerShell(script, f"enable Windows feature(s) {', '.join(missing)} (reboot needed)"), _RebootNeeded()]


class _RebootNeeded(Action):
    def describe(self) -> str:
        return "stop: a reboot is needed before containers can run; run `invoke setup` again after it"

    def run(self, session: Session, component: str) -> None:
        if not session.dry:
            raise StepFailed("features enabled: reboot now, then run `invoke setup` again; it continues where it stopped")


def check(c: Context) -> None:
    """Windows: refuse early when not elevated, the build is too old, or a reboot is pending."""
    run_step(c, "preflight.check")


def features(c: Context) -> None:
    """Windows: check the Containers (and, on client editions, Hyper-V) features; enable them with `setup --enable-features`."""
    run_step(c, "preflight.features")


@hookimpl
def dockless_register_components(registry: Any) -> None:
    registry.add(Component(
        name="preflight",
        platforms=("windows",),
        steps=(
            Step("check", plan_check, check, platforms=("windows",)),
            Step("features", plan_features, features, platforms=("windows",)),
        ),
        description="host checks before anything changes",
    ))
