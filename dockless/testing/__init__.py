"""Test helpers shipped with dockless (local HTTP server, fixtures)."""
