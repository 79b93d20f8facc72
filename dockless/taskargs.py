"""Task arguments that must not be options.

invoke hands a task's positional (or value-taking) argument whatever word follows, so
``invoke bundle --help`` runs ``bundle`` with ``directory="--help"`` (and downloads), and
``invoke pod.rm --help`` looks for a pod named ``--help``. Every task that takes a string
calls :func:`plain_values` first, before it does anything.
"""
from __future__ import annotations

from collections.abc import Iterable

from invoke import Exit


def plain_values(task: str, **values: tuple[str | Iterable[str] | None, str]) -> None:
    """Refuse, with one line, a value that starts with ``-``: it is an option invoke took as the
    value (``--help``). ``values`` maps each argument to ``(value, what it should be)``, e.g.
    ``directory=(directory, "a directory")``; a list value (an iterable argument) is checked
    item by item; empty values are fine."""
    for _name, (value, what) in values.items():
        items = [value] if value is None or isinstance(value, str) else list(value)
        for item in items:
            if isinstance(item, str) and item.startswith("-"):
                raise Exit(f"{task}: {item!r} is not {what}; for help run `invoke --help {task}`", 2)
