"""The ``dockless`` console script: invoke's Program with the plugin-built namespace."""
from __future__ import annotations

import atexit
import os
import sys
from types import TracebackType

from invoke import Program

from dockless import __version__


_INSTALLED = False


def _stdout_gone() -> None:
    """Send whatever is still buffered for stdout to the null device (its reader is gone)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _flush_at_exit() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_gone()
        sys.stderr.flush()
        os._exit(1)
    except (OSError, ValueError):
        pass


def quiet_on_closed_stdout() -> None:
    """``invoke plan --json | head``: when stdout's reader goes away, exit 1 without a
    traceback (as rich's console does), whether that is noticed while a task prints or when
    the output is flushed at exit. Other errors keep their traceback."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, BrokenPipeError) and _stdout_broken():
            _stdout_gone()  # the exit status stays 1, as for any uncaught exception
            return
        previous(kind, exc, tb)

    global _INSTALLED
    if not _INSTALLED:
        _INSTALLED = True
        sys.excepthook = hook
        atexit.register(_flush_at_exit)


def _stdout_broken() -> bool:
    """True when stdout is a pipe (or socket) whose reader is gone; True where it cannot be told."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def main() -> None:
    from dockless.namespace import build_namespace
    from dockless.registry import PluginError
    from dockless.settings import SettingsError

    quiet_on_closed_stdout()
    try:
        namespace = build_namespace()
    except (PluginError, SettingsError) as exc:
        print(f"dockless: {exc}", file=sys.stderr)
        sys.exit(2)
    Program(namespace=namespace, version=__version__, name="dockless", binary="dockless").run()
