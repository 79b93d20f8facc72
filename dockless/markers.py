"""The one marker module: third-party plugins need only the project name ``dockless``."""
from __future__ import annotations

import pluggy

PROJECT = "dockless"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
