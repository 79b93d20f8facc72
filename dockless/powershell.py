"""The Windows boundary: PowerShell scripts (Windows PowerShell 5.1 syntax) run through invoke.

Every script goes through :func:`command`, so tests see exactly the command line Windows would
run and can decode the script from it.
"""
from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

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


def as_list(value: Any) -> list[Any]:
    """A JSON array from a probe whatever shape Windows PowerShell 5.1's ConvertTo-Json gave it:
    ``null`` (an empty pipeline), a bare object or string (a one-element pipeline), a list, or
    ``{"value": [...], "Count": n}`` (a PSObject-wrapped array)."""
    if value is None:
        return []
    if isinstance(value, dict) and {k.lower() for k in value} <= {"value", "count"} and isinstance(value.get("value"), list):
        return list(value["value"])
    if isinstance(value, list):
        return value
    return [value]


_CLIXML_ERROR = re.compile(r'<S S="Error">(.*?)</S>', re.S)
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_RECORD_TAIL = re.compile(r"^(At line:\d+|At [A-Za-z]:\\|\+ |\s+\+ (CategoryInfo|FullyQualifiedErrorId))")


def error_message(stderr: str | None, stdout: str | None = "") -> str:
    """One line for a failed PowerShell run: the message of its error record.

    powershell.exe writes errors to a redirected stderr as CLIXML (``#< CLIXML`` then
    ``<S S="Error">…_x000D__x000A_</S>`` per line), or as text on a console; either way the
    record ends with ``At line:…``, the statement and ``+ CategoryInfo …`` lines, so the last
    line of stderr is never the message. Text a native program wrote to stderr before the
    record (``containerd: The specified service already exists.``) is added in parentheses."""
    text = stderr or ""
    native: list[str] = []
    if "#< CLIXML" in text:
        head, xml = text.split("#< CLIXML", 1)
        native = [ln.strip() for ln in head.splitlines() if ln.strip()]
        parts = [_CLIXML_ESCAPE.sub(lambda m: chr(int(m[1], 16)), html.unescape(p)) for p in _CLIXML_ERROR.findall(xml)]
        lines = "".join(parts).splitlines()
    else:
        lines = text.splitlines()
    message: list[str] = []
    for i, line in enumerate(lines):
        if _RECORD_TAIL.match(line) and message:
            break
        if _RECORD_TAIL.match(line):
            continue
        if line.strip():
            message.append(line.strip())
        if i + 1 < len(lines) and lines[i + 1].startswith("At line:") and not native and "#< CLIXML" not in text:
            native = message[:-1]
            message = message[-1:]
    out = " ".join(message)
    extra = next((n for n in reversed(native) if n not in out), "")
    if out and extra:
        return f"{out} ({extra})"
    if out or extra:
        return out or extra
    rest = [ln.strip() for ln in (stdout or "").splitlines() if ln.strip()]
    return rest[-1] if rest else "no output"
