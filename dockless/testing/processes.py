"""Process helpers for tests that start a real containerd: read /proc, describe a failed run."""
from __future__ import annotations

import subprocess
from pathlib import Path


def cmdline(pid: int) -> list[bytes]:
    """The argv of ``pid`` ([] when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie is gone for us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """A failed command with its output, for assertion messages."""
    return (f"`{' '.join(map(str, proc.args))}` exited {proc.returncode}\n--- stdout ---\n{proc.stdout}"
            f"\n--- stderr ---\n{proc.stderr}")
