"""dockless-calico: Calico for Windows as the ``cni`` provider ``calico`` (see README.md)."""
from __future__ import annotations

__version__ = "0.1.0"
