"""The Windows boundary: PowerShell scripts (Windows PowerShell 5.1 syntax) run through invoke.

Every script goes through :func:`command`, so tests see exactly the command line Windows would
run and can decode the script from it.
"""
from __future__ import annotations

import base64
import json
import re

EXE = "powershell.exe"
PRELUDE = "$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n"
_ENCODED = re.compile(r"-EncodedCommand\s+(\S+)")


def quote(value: object) -> str:
    """A PowerShell single-quoted literal: nothing inside is expanded."""
    return "'" + str(value).replace("'", "''") + "'"


def command(script: str) -> str:
    """The full command line for ``script`` (UTF-16LE base64, so no shell quoting can break it)."""
    encoded = base64.b64encode((PRELUDE + script).encode("utf-16-le")).decode("ascii")
    return f"{EXE} -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {encoded}"


def decode(command_line: str) -> str | None:
    """The script inside a command line built by :func:`command` (None for other commands)."""
    m = _ENCODED.search(command_line)
    if not command_line.startswith(EXE) or not m:
        return None
    return base64.b64decode(m[1]).decode("utf-16-le")


def probe_script(probes: dict[str, str]) -> str:
    """One script that evaluates every probe and prints one JSON object keyed like ``probes``.

    A probe that throws yields ``{"error": "<message>"}`` for its key only."""
    lines = ["$dl = [ordered]@{}"]
    for key, body in probes.items():
        lines.append(
            f"try {{ $dl[{quote(key)}] = & {{\n{body}\n}} }} "
            f"catch {{ $dl[{quote(key)}] = @{{ error = $_.Exception.Message }} }}"
        )
    lines.append("$dl | ConvertTo-Json -Depth 8 -Compress")
    return "\n".join(lines) + "\n"


def parse_probe_output(stdout: str) -> dict[str, object]:
    text = stdout.strip()
    if not text:
        return {}
    data = json.loads(text[text.index("{"):])
    if not isinstance(data, dict):
        raise ValueError("probe output is not a JSON object")
    return data
