"""Test hook: SIGKILL this process at a named point, so tests can prove that `setup` converges
after an interruption at any point (issue 6). Outside tests the variable is unset and every
check is one environment lookup.

``DOCKLESS_TEST_KILL_AT`` names one point:

* ``<step-id>:before`` / ``<step-id>:after`` — around a step in ``Session.run_step``
  (``runc.install:after``, ``containerd.config:before`` …);
* ``containerd.service:started`` — containerd was launched but its pid file is not written yet;
* ``download:<n>`` — once downloads have written ``n`` bytes (a ``.part`` file stays behind);
* ``extract:<n>`` — once installs have written ``n`` bytes of binaries, usually in the middle of
  a file (its temporary file stays behind).

The process dies by SIGKILL: no ``finally`` block, no lock release, no cleanup, like a power cut
or an OOM kill.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

ENV = "DOCKLESS_TEST_KILL_AT"
_counted: dict[str, int] = {}
_lock = threading.Lock()


def at(point: str) -> None:
    """Die here when ``DOCKLESS_TEST_KILL_AT`` names ``point``."""
    if os.environ.get(ENV) == point:
        _die(point)


def progressed(kind: str, nbytes: int) -> None:
    """Count ``nbytes`` more of ``kind`` (``download``/``extract``); die once the total reaches
    the ``<kind>:<n>`` threshold."""
    spec = os.environ.get(ENV)
    if not spec or not spec.startswith(kind + ":"):
        return
    with _lock:
        _counted[kind] = _counted.get(kind, 0) + nbytes
        total = _counted[kind]
    if total >= int(spec.split(":", 1)[1]):
        _die(f"{kind} after {total} bytes")


def _die(where: str) -> None:
    sys.stderr.write(f"dockless: {ENV}: killed at {where}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
