"""dockless.testing.powershell: syntax errors and PowerShell 7-only constructs."""
from __future__ import annotations

import base64

import pytest

pytest.importorskip("tree_sitter")
pytest.importorskip("tree_sitter_powershell")

from dockless.testing.powershell import (  # noqa: E402
    assert_windows_powershell,
    parse_errors,
    ps7_only_constructs,
)

# Windows PowerShell 5.1 constructs dockless scripts use; none of it may be flagged.
VALID_51 = r"""[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string] $Subnet,
    [Parameter(Position = 1, Mandatory)][string] $Gateway = '10.0.0.1',
    [switch] $Force
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version 2.0

function Write-Utf8NoBom {
    param([string] $Path, [string] $Text)
    $encoding = New-Object System.Text.UTF8Encoding $false
    [System.IO.File]::WriteAllText($Path, $Text, $encoding)
}

$conf = @"
{
    "cniVersion": "1.0.0",
    "name": "nat",
    "ipam": { "subnet": "$Subnet", "routes": [ { "dst": "0.0.0.0/0", "gw": "$Gateway" } ] }
}
"@
$literal = @'
not expanded: $x ?? $y, a ? b : c, cmd1 && cmd2, $o?.p, -Parallel
'@
Write-Utf8NoBom -Path "$env:ProgramFiles\containerd\cni\conf\0-containerd-nat.conf" -Text $conf

$download = @{
    Uri             = 'https://github.com/containerd/containerd/releases/download/v1.7.20/containerd-1.7.20-windows-amd64.tar.gz'
    OutFile         = Join-Path $env:TEMP 'containerd.tar.gz'
    UseBasicParsing = $true
}
Invoke-WebRequest @download

$nat = Get-HnsNetwork | Where-Object Name -eq 'nat' | Select-Object Name,Type,Id,Subnets
$nat | ConvertTo-Json -Depth 5
Get-NetIPAddress -AddressFamily IPv4 | Select-Object IPAddress, PrefixLength, InterfaceAlias | ConvertTo-Json
$busy = Get-Process | ? { $_.CPU -gt 1 } | % { $_.Id }
if ($?) { Write-Output "done? yes : no" } elseif ($null -eq $nat) { Write-Output 'none' } else { '{0}/{1}' -f $Subnet, 16 }

try {
    & "$env:ProgramFiles\containerd\bin\containerd.exe" --register-service --log-level debug 2>&1 | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "containerd exited with $LASTEXITCODE" }
} catch [System.Management.Automation.RuntimeException] {
    Write-Warning $_.Exception.Message
} finally {
    Write-Verbose "cleanup $($download.OutFile)"
}

switch -Regex ($Subnet) {
    '^10\.' { 'ten' }
    default { 'other' }
}
foreach ($i in 1..3) { $i * 2 }
:retry foreach ($attempt in 1..5) { foreach ($probe in 1..2) { if ($probe -eq 2) { continue retry } }; break retry }
$increment = { param($x) $x + 1 }
& $increment 2
$ordered = [ordered]@{ a = 1; b = 'two' }
Get-ChildItem -Path C:\logs\app??.log -ErrorAction SilentlyContinue
$item = Get-Item `
    -Path .
$build = (Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion').CurrentBuild
Enable-WindowsOptionalFeature -Online -FeatureName Containers, Microsoft-Hyper-V -All -NoRestart | Out-Null
Add-MpPreference -ExclusionProcess "$env:ProgramFiles\containerd\bin\containerd.exe"
crictl.exe --runtime-endpoint=npipe://./pipe/containerd-containerd --timeout=30s pods
$bytes = [System.Text.Encoding]::Unicode.GetBytes('Write-Output 1')
$encoded = [Convert]::ToBase64String($bytes)
powershell.exe -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand $encoded
exit 0
"""

BROKEN = {
    "unbalanced brace": "function Install-Containerd {\n    Write-Output 'x'\n",
    "missing closing brace in if": "if ($a) {\n    Write-Output 'x'\n",
    "if ( without close": "if ( $a\n{\n    Write-Output 'x'\n}\n",
    "extra closing brace": "Write-Output 'x'\n}\n",
    "unterminated string": "Write-Output \"never closed\n",
    "unclosed array": "$x = @(1, 2\n",
    "unclosed here-string": "$t = @\"\nbody\n",
    "trailing comma in argument list": "Select-Object Name,\n",
}

PS7 = {
    "$a ?? 'default'": "`??`",
    "$a ??= 1": "`??=`",
    "$x?.Name": "`?.`",
    "${x}?[0]": "`?[`",
    "$v = $c ? 'yes' : 'no'": "ternary",
    "git fetch && git merge": "`&&`",
    "Test-Path x || New-Item x": "`||`",
    "1..3 | ForEach-Object -Parallel { $_ }": "ForEach-Object -Parallel",
    "1..3 | % -Parallel { $_ }": "ForEach-Object -Parallel",
    "Invoke-WebRequest -Uri $u -OutFile $f -MaximumRetryCount 3": "Invoke-WebRequest -MaximumRetryCount",
    "iwr $u -RetryIntervalSec 5": "Invoke-WebRequest -RetryIntervalSec",
    "Invoke-RestMethod $u -SkipCertificateCheck": "Invoke-RestMethod -SkipCertificateCheck",
    "Invoke-WebRequest $u -MaximumRetry 3": "Invoke-WebRequest -MaximumRetryCount",
    "$p = @{ Uri = $u; MaximumRetryCount = 3 }": "MaximumRetryCount",
    "Start-Job { 1 } -Parallel": "-Parallel",
    "Set-Content -Path $p -Value $v -Encoding utf8NoBOM": "utf8NoBOM",
    "$h = Get-Content $p -Raw | ConvertFrom-Json -AsHashtable": "ConvertFrom-Json -AsHashtable",
    "Get-Content $p -AsByteStream": "Get-Content -AsByteStream",
    "Remove-Service -Name containerd": "`Remove-Service` cmdlet",
    "if ($IsWindows) { 'win' }": "$IsWindows",
    "Start-Sleep 10 &": "`&` background operator",
    "Write-Host \"`e[32mok\"": "`e",
    "Join-Path $root 'a' -AdditionalChildPath 'b'": "Join-Path -AdditionalChildPath",
}


def test_valid_51_script_has_no_parse_errors() -> None:
    assert parse_errors(VALID_51) == []


def test_valid_51_script_has_no_ps7_constructs() -> None:
    assert ps7_only_constructs(VALID_51) == []
    assert_windows_powershell(VALID_51)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_scripts_are_flagged(name: str) -> None:
    errors = parse_errors(BROKEN[name])
    assert errors, name
    line, col, _ = errors[0].split(":", 2)
    assert int(line) >= 1 and int(col) >= 1


def test_missing_brace_is_reported_as_missing() -> None:
    assert parse_errors("if ($a) { b") == ['1:12: missing "}"']


def test_if_without_close_points_at_the_if() -> None:
    assert parse_errors("if ( $a") == ["1:1: if ( $a"]


def test_error_positions_are_lines_and_characters() -> None:
    script = "Write-Output 'ünïcödé'\n$x = @(1, 2\n"
    errors = parse_errors(script)
    assert errors and errors[0].startswith("2:1:")


@pytest.mark.parametrize("snippet", sorted(PS7))
def test_each_ps7_construct_is_flagged(snippet: str) -> None:
    found = ps7_only_constructs(snippet)
    assert any(PS7[snippet] in f for f in found), (snippet, found)
    assert all(f.endswith("(PowerShell 7+)") for f in found)
    with pytest.raises(AssertionError, match="not valid Windows PowerShell 5.1"):
        assert_windows_powershell(snippet, name="snippet")


def test_ps7_findings_carry_positions() -> None:
    script = "Write-Output 1\n$b = $a ?? 2\n"
    assert ps7_only_constructs(script) == ["2:9: `??` null-coalescing operator (PowerShell 7+)"]


@pytest.mark.parametrize(
    "script",
    [
        'Write-Output "a ? b : c"',
        "Write-Output 'x ?? y && z || w'",
        "# $a ?? $b; cmd1 && cmd2; $c ? 1 : 2\nWrite-Output 1",
        "<# $x?.y -Parallel #>\nWrite-Output 1",
        "$s = @\"\n$a ?? $b && $c\n\"@\n",
        'cmd.exe /c "build && test"',
        "Get-Process | ? { $_.Handles -gt 100 }",
        "if (-not $?) { exit 1 }",
        "Get-ChildItem C:\\temp\\file?.txt",
        "Write-Output 2>&1 | Out-Null",
        'Write-Host "escaped ``e is not ESC"',
        "Set-Content -Path $p -Value $v -Encoding Ascii",
        "$text = 'no? really: yes'",
    ],
)
def test_no_false_positives_in_strings_comments_and_51_syntax(script: str) -> None:
    assert ps7_only_constructs(script) == []
    assert parse_errors(script) == []


def test_encoded_command_content_is_checked_after_decoding() -> None:
    # dockless runs scripts as -EncodedCommand (UTF-16LE base64); the check runs on the text.
    script = "$net = Get-HnsNetwork | Where-Object Name -eq 'nat'\n$net | ConvertTo-Json -Depth 5\n"
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    line = f"powershell.exe -NoProfile -EncodedCommand {encoded}"
    assert parse_errors(line) == []
    decoded = base64.b64decode(encoded).decode("utf-16-le")
    assert parse_errors(decoded) == [] and ps7_only_constructs(decoded) == []


def test_probe_shapes_used_by_dockless_parse() -> None:
    probes = (
        "Get-NetIPAddress -AddressFamily IPv4 | Select-Object IPAddress,PrefixLength,InterfaceAlias | ConvertTo-Json\n"
        "Get-HnsNetwork | Where-Object Name -eq 'nat' | Select-Object Name,Type,Id,Subnets | ConvertTo-Json -Depth 5\n"
        "$dl = [ordered]@{}\n"
        "try { $dl['nat'] = & {\n"
        "Get-HnsNetwork | Where-Object { $_.Name -eq 'nat' } | Select-Object Name, Type, Id, Subnets\n"
        "} } catch { $dl['nat'] = @{ error = $_.Exception.Message } }\n"
        "$dl | ConvertTo-Json -Depth 8 -Compress\n"
    )
    assert parse_errors(probes) == []
    assert ps7_only_constructs(probes) == []


def test_a_broken_line_is_still_reported_next_to_bridged_grammar_gaps() -> None:
    script = "Select-Object Name, Type\nif ($x) {\n"
    assert parse_errors(script) != []
