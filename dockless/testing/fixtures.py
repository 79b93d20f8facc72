"""pytest fixtures for dockless and its plugin authors (loaded through the ``pytest11`` entry
point ``dockless``). Imports are lazy so that pytest starts fast."""
from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def dockless_pm() -> Any:
    """A fresh plugin manager with the built-ins only (entry points off)."""
    from dockless.manager import plugin_manager

    return plugin_manager(entry_points=False)
