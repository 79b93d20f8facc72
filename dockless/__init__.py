"""dockless: containerd without Docker, on Windows and Linux, as an invoke task graph."""
from __future__ import annotations

from dockless.markers import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]
__version__ = "0.1.0"
