"""The ``dockless`` console script: invoke's Program with the plugin-built namespace."""
from __future__ import annotations

import sys

from invoke import Program

from dockless import __version__


def main() -> None:
    from dockless.namespace import build_namespace
    from dockless.registry import PluginError
    from dockless.settings import SettingsError

    try:
        namespace = build_namespace()
    except (PluginError, SettingsError) as exc:
        print(f"dockless: {exc}", file=sys.stderr)
        sys.exit(2)
    Program(namespace=namespace, version=__version__, name="dockless", binary="dockless").run()
