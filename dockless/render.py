"""Jinja rendering: pure (no I/O but reading templates), strict about undefined names."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any



def toml_string(value: object) -> str:
    """A TOML string for ``value``: a literal string (no escapes, so ``C:\\Program Files`` is
    safe, field case C04) unless it contains a quote or newline, then a basic string."""
    text = str(value)
    if "'" not in text and "\n" not in text:
        return f"'{text}'"
    return json.dumps(text)  # JSON string escapes are valid TOML basic-string escapes


def toml_list(values: list[object]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


@lru_cache(maxsize=None)
def environment(folder: str) -> Any:
    import jinja2  # imported on first render: keeps `invoke --list` fast

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["toml"] = toml_string
    env.filters["toml_list"] = toml_list
    env.filters["json"] = lambda v: json.dumps(v, indent=2)
    return env


def render(folder: Path | str, template: str, /, **context: Any) -> bytes:
    """Render ``folder/template`` with ``context``; paths become plain strings. UTF-8, no BOM."""
    ctx = {k: (str(v) if isinstance(v, PurePath) else v) for k, v in context.items()}
    return environment(str(folder)).get_template(template).render(**ctx).encode("utf-8")
