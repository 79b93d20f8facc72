"""invoke entry point: the namespace comes from the plugin host (see dockless/namespace.py)."""
from __future__ import annotations

import sys

from dockless.cli import quiet_on_closed_stdout
from dockless.namespace import build_namespace
from dockless.registry import PluginError
from dockless.settings import SettingsError

quiet_on_closed_stdout()  # `invoke plan --json | head`: no BrokenPipeError traceback
try:
    ns = build_namespace()
except (PluginError, SettingsError) as exc:
    print(f"dockless: {exc}", file=sys.stderr)
    sys.exit(2)

# repo-only task (not in the `dockless` console script): the offline Linux-lane demo
from dockless.demo import demo  # noqa: E402

ns.add_task(demo)
