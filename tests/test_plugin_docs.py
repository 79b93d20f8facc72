"""docs/plugins.md cannot drift from the code (issue 7, "What it must show" #4).

The blocks between ``<!-- generated: NAME -->`` and ``<!-- end generated -->`` are built here from
the code (hookspec docstrings, the model dataclasses, the actions, the built-in roles, the
``dockless.testing`` fixtures); a test fails when the page differs. Regenerate with::

    DOCKLESS_UPDATE_DOCS=1 python -m pytest tests/test_plugin_docs.py

Meta-tests: every hookspec has a docs entry and a test that uses it; every built-in Setting has
help; every task has a docstring (its ``--help``); hook implementations give no defaults.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path

import pytest

from dockless import actions, hookspecs, model
from dockless.manager import builtin_plugins, collect, plugin_manager
from dockless.markers import PROJECT

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "plugins.md"
BLOCK = re.compile(r"<!-- generated: (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- end generated -->", re.S)


# -- what the code says -------------------------------------------------------------------------------
def hookspec_functions() -> list[Callable[..., object]]:
    return [fn for _name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, f"{PROJECT}_spec")]


def _signature(fn: Callable[..., object]) -> str:
    params = ", ".join(inspect.signature(fn).parameters)
    return f"{fn.__name__}({params})"


def gen_hooks() -> str:
    out = []
    for fn in hookspec_functions():
        doc = inspect.cleandoc(fn.__doc__ or "")
        ret = inspect.signature(fn).return_annotation
        out.append(f"### `{_signature(fn)}`\n\nReturns `{ret}`. {doc}\n")
    return "\n".join(out)


def _type(annotation: object) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    return str(text).replace("|", "\\|")


def _default(f: dataclasses.Field[object]) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f"`{f.default_factory()!r}`"  # type: ignore[misc]
    return "required"


def gen_model() -> str:
    out = []
    for cls in (model.Component, model.Step, model.Setting):
        doc = inspect.cleandoc(cls.__doc__ or "")
        out.append(f"#### `{cls.__name__}`\n\n{doc}\n\n| field | type | default |\n|---|---|---|")
        for f in dataclasses.fields(cls):
            out.append(f"| `{f.name}` | `{_type(f.type)}` | {_default(f)} |")
        out.append("")
    return "\n".join(out)


def gen_actions() -> str:
    rows = ["| action | what it is |", "|---|---|"]
    for name, cls in inspect.getmembers(actions, inspect.isclass):
        if issubclass(cls, actions.Action) and cls is not actions.Action and cls.__module__ == actions.__name__:
            first = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
            if first.startswith(f"{name}("):  # the signature dataclasses put in place of a docstring
                first = "—"
            fields = ", ".join(f.name for f in dataclasses.fields(cls))
            rows.append(f"| `{name}({fields})` | {first} |")
    return "\n".join(rows) + "\n"


def builtin_registry() -> object:
    return collect(plugin_manager(entry_points=False))


def gen_roles() -> str:
    reg = builtin_registry()
    rows = ["| role | built-in provider | plugin | platforms | collection |", "|---|---|---|---|---|"]
    for comp in reg.components.values():  # type: ignore[attr-defined]
        if comp.role:
            rows.append(f"| `{comp.role}` | `{comp.name}` | `{reg.owners[comp.name]}` | {', '.join(comp.platforms)} | "  # type: ignore[attr-defined]
                        f"`{comp.role}.*` |")
    return "\n".join(rows) + "\n"


def gen_fixtures() -> str:
    from dockless.testing import fixtures

    rows = ["| fixture | what it gives |", "|---|---|"]
    for name, fn in inspect.getmembers(fixtures):
        if getattr(fn, "_pytestfixturefunction", None) is not None or type(fn).__name__ == "FixtureFunctionDefinition":
            doc = inspect.cleandoc(getattr(fn, "__doc__", "") or "").split("\n\n")[0].replace("\n", " ")
            rows.append(f"| `{name}` | {doc} |")
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "hooks": gen_hooks, "model": gen_model, "actions": gen_actions, "roles": gen_roles,
    "fixtures": gen_fixtures,
}


def regenerate(text: str) -> str:
    return BLOCK.sub(lambda m: f"<!-- generated: {m['name']} -->\n{GENERATORS[m['name']]()}<!-- end generated -->", text)


# -- the tests ------------------------------------------------------------------------------------------
def test_page_has_every_generated_block_once() -> None:
    names = [m["name"] for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8"))]
    assert sorted(names) == sorted(GENERATORS)


def test_generated_blocks_match_the_code() -> None:
    text = PAGE.read_text(encoding="utf-8")
    fresh = regenerate(text)
    if fresh != text and os.environ.get("DOCKLESS_UPDATE_DOCS") == "1":
        PAGE.write_text(fresh, encoding="utf-8")
        text = fresh
    assert fresh == text, "docs/plugins.md is out of date: DOCKLESS_UPDATE_DOCS=1 python -m pytest tests/test_plugin_docs.py"


@pytest.mark.parametrize("spec", hookspec_functions(), ids=lambda fn: fn.__name__)
def test_every_hookspec_is_documented_and_tested(spec: Callable[..., object]) -> None:
    doc = inspect.cleandoc(spec.__doc__ or "")
    for part in ("When:", "May touch:", "Result:"):
        assert part in doc, f"{spec.__name__}'s docstring lacks {part!r} (when it runs, what it may touch, the result rule)"
    assert f"### `{_signature(spec)}`" in PAGE.read_text(encoding="utf-8")
    users = [p.name for p in (REPO / "tests").glob("test_*.py")
             if p.name != Path(__file__).name and spec.__name__ in p.read_text(encoding="utf-8")]
    assert users, f"no test in tests/ uses the hook {spec.__name__}"


def test_every_hookspec_is_called_with_keywords_by_the_host() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "dockless").glob("*.py"))
    for spec in hookspec_functions():
        assert f'"{spec.__name__}"' in source, f"the host never calls {spec.__name__}: call it or remove it"


def test_every_builtin_setting_has_help() -> None:
    reg = builtin_registry()
    missing = [f"[{c.key}] {k}" for c in reg.components.values() for k, s in c.settings.items()  # type: ignore[attr-defined]
               if not (s.help and s.help.strip())]
    assert not missing, f"settings without help: {missing}"


def test_every_builtin_task_has_a_docstring() -> None:
    reg = builtin_registry()
    funcs = [s.task for c in reg.components.values() for s in c.steps]  # type: ignore[attr-defined]
    funcs += [getattr(t, "body", t) for c in reg.components.values() for t in c.tasks]  # type: ignore[attr-defined]
    funcs += [getattr(t, "body", t) for ts in reg.extra_tasks.values() for _p, t in ts]  # type: ignore[attr-defined]
    missing = [f"{f.__module__}.{f.__name__}" for f in funcs if not (inspect.getdoc(f) or "").strip()]
    assert not missing, f"tasks without a docstring (their --help): {missing}"


def test_builtin_hook_implementations_take_no_defaults() -> None:
    for name, module in builtin_plugins():
        for attr, fn in inspect.getmembers(module, inspect.isfunction):
            if hasattr(fn, f"{PROJECT}_impl"):
                defaults = [p for p in inspect.signature(fn).parameters.values() if p.default is not p.empty]
                assert not defaults, f"{name}.{attr}: pluggy never passes defaults ({defaults})"


def test_model_types_resolve() -> None:
    for cls in (model.Component, model.Step, model.Setting):
        typing.get_type_hints(cls, vars(model), {"Action": object, "Session": object})
