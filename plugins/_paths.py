"""Small helpers the built-in plugins share."""
from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

GITHUB = "https://github.com"


def release_url(repo: str, tag: str, asset: str) -> str:
    return f"{GITHUB}/{repo}/releases/download/{tag}/{asset}"
