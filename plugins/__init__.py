"""Built-in component plugins: the one source the host registers them from.

Each module implements ``dockless_register_components``; the list order does not matter (the
host orders components from their ``requires``).
"""
from __future__ import annotations

from plugins import (
    cni_bridge,
    cni_nat,
    containerd,
    crictl,
    defender,
    hns,
    images,
    pods,
    preflight,
    runc,
)

BUILTINS = [
    ("preflight", preflight),
    ("containerd", containerd),
    ("runc", runc),
    ("defender", defender),
    ("hns", hns),
    ("cni-nat", cni_nat),
    ("cni-bridge", cni_bridge),
    ("crictl", crictl),
    ("images", images),
    ("pods", pods),
]
