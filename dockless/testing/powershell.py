"""Checks for the PowerShell scripts dockless emits: they must parse and be 5.1-only.

dockless runs every Windows action under Windows PowerShell 5.1, which has none of the
PowerShell 7 syntax (``??``, ``?.``, ternaries, ``&&``/``||``, ``ForEach-Object -Parallel``,
``Invoke-WebRequest -MaximumRetryCount`` …). A script using it fails on the target machine
only, so tests run every emitted script through:

* :func:`parse_errors` — syntax errors from the tree-sitter PowerShell grammar;
* :func:`ps7_only_constructs` — PowerShell 6/7-only syntax, cmdlets, parameters and
  variables, found by walking the syntax tree (strings and comments never match);
* :func:`assert_windows_powershell` — both, as one assertion for tests.

Known gaps of the grammar (tree-sitter-powershell 0.25/0.26) are bridged before parsing by
length-preserving rewrites of the lines that fail, so positions stay exact: bare-word
argument lists (``Select-Object Name,Type``), native ``--flag=value`` arguments, a lone
``--`` argument, ``break``/``continue`` with a loop label, and a param block right at the
end of the text. Needs the ``test`` extra
(``tree-sitter``, ``tree-sitter-powershell``).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "PS7_CMDLETS",
    "PS7_PARAMETERS",
    "PS7_VARIABLES",
    "assert_windows_powershell",
    "parse_errors",
    "ps7_only_constructs",
]

# --- what PowerShell 7 has and Windows PowerShell 5.1 lacks -------------------------------

#: Cmdlets that do not exist in Windows PowerShell 5.1.
PS7_CMDLETS: dict[str, str] = {
    "test-json": "Test-Json",
    "join-string": "Join-String",
    "get-error": "Get-Error",
    "remove-service": "Remove-Service",
    "remove-alias": "Remove-Alias",
    "get-uptime": "Get-Uptime",
    "convertfrom-markdown": "ConvertFrom-Markdown",
    "show-markdown": "Show-Markdown",
    "get-pslocation": "Get-PSLocation",
}

#: Parameters added after 5.1, per cmdlet (canonical names); ``"*"`` applies to any command.
PS7_PARAMETERS: dict[str, frozenset[str]] = {
    "ForEach-Object": frozenset({"Parallel", "ThrottleLimit", "TimeoutSeconds", "AsJob", "UseNewRunspace"}),
    "Invoke-WebRequest": frozenset({
        "MaximumRetryCount", "RetryIntervalSec", "SkipCertificateCheck", "SkipHttpErrorCheck",
        "SkipHeaderValidation", "StatusCodeVariable", "ResponseHeadersVariable", "Resume",
        "SslProtocol", "Authentication", "Token", "NoProxy", "HttpVersion", "Form",
        "AllowUnencryptedAuthentication", "PreserveAuthorizationOnRedirect", "CustomMethod",
        "ConnectionTimeoutSeconds", "OperationTimeoutSeconds", "AllowInsecureRedirect",
        "PreserveHttpMethodOnRedirect", "UnixSocket",
    }),
    "ConvertFrom-Json": frozenset({"AsHashtable", "Depth", "NoEnumerate", "DateKind"}),
    "ConvertTo-Json": frozenset({"AsArray", "EnumsAsStrings", "EscapeHandling"}),
    "Get-Content": frozenset({"AsByteStream"}),
    "Set-Content": frozenset({"AsByteStream"}),
    "Add-Content": frozenset({"AsByteStream"}),
    "Import-Module": frozenset({"UseWindowsPowerShell", "SkipEditionCheck"}),
    "Join-Path": frozenset({"AdditionalChildPath"}),
    "Split-Path": frozenset({"Extension", "LeafBase"}),
    "Select-Object": frozenset({"SkipIndex"}),
    "Sort-Object": frozenset({"Top", "Bottom", "Stable"}),
    "Get-Date": frozenset({"AsUTC", "UnixTimeSeconds"}),
    "Test-Connection": frozenset({"TargetName", "TcpPort", "Ping", "Traceroute", "MtuSize"}),
    "Start-Process": frozenset({"Environment"}),
    "*": frozenset({"ProgressAction"}),
}
PS7_PARAMETERS["Invoke-RestMethod"] = PS7_PARAMETERS["Invoke-WebRequest"] | {
    "FollowRelLink", "MaximumFollowRelLink"
}

#: Automatic variables that only PowerShell 6+ defines (``$null`` in 5.1, so logic breaks).
PS7_VARIABLES: dict[str, str] = {
    "iswindows": "$IsWindows",
    "islinux": "$IsLinux",
    "ismacos": "$IsMacOS",
    "iscoreclr": "$IsCoreCLR",
    "psstyle": "$PSStyle",
}

#: ``-Encoding`` values 5.1 does not know (it writes UTF-8 *with* BOM for ``UTF8``).
_PS7_ENCODINGS = {"utf8nobom": "utf8NoBOM", "utf8bom": "utf8BOM", "ansi": "ansi"}
_ENCODING_CMDLETS = {"Get-Content", "Set-Content", "Add-Content", "Out-File", "Export-Csv",
                     "Import-Csv", "Select-String", "Send-MailMessage", "Tee-Object"}

#: 5.1 aliases (and module-qualified names) → canonical cmdlet names used above.
_ALIASES = {
    "%": "ForEach-Object", "foreach": "ForEach-Object",
    "iwr": "Invoke-WebRequest", "curl": "Invoke-WebRequest", "wget": "Invoke-WebRequest",
    "irm": "Invoke-RestMethod",
    "gc": "Get-Content", "cat": "Get-Content", "type": "Get-Content",
    "sc": "Set-Content", "ac": "Add-Content", "ipmo": "Import-Module",
    "select": "Select-Object", "sort": "Sort-Object", "tee": "Tee-Object", "sls": "Select-String",
}
_CANONICAL = {name.lower(): name for name in list(PS7_PARAMETERS) + sorted(_ENCODING_CMDLETS)}

#: Hashtable keys that can only be meant for splatting into a PowerShell 7 web cmdlet.
_PS7_SPLAT_KEYS = {p.lower(): p for p in (
    "MaximumRetryCount", "RetryIntervalSec", "SkipCertificateCheck", "SkipHttpErrorCheck",
    "SkipHeaderValidation", "ResponseHeadersVariable", "StatusCodeVariable",
)}

#: An abbreviated parameter must be at least this long to be matched by prefix.
_MIN_PREFIX = 6

_STRING_NODES = frozenset({
    "comment", "expandable_string_literal", "verbatim_string_characters",
    "expandable_here_string_literal", "verbatim_here_string_characters", "string_literal",
})
_ARGUMENT_NODES = frozenset({"generic_token", "command_name", "verbatim_command_argument"})


# --- the parser ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _parser():  # type: ignore[no-untyped-def]
    try:
        import tree_sitter
        import tree_sitter_powershell
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "dockless.testing.powershell needs tree-sitter and tree-sitter-powershell "
            "(pip install 'dockless[test]')"
        ) from exc
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


@dataclass
class _Parsed:
    text: str         # the text the tree was built from (original, normalised)
    data: bytes       # its UTF-8 bytes (byte offsets index this)
    original: str     # what the caller passed
    tree: object


def _walk(node) -> Iterator[object]:  # type: ignore[no-untyped-def]
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _error_nodes(root) -> list[object]:  # type: ignore[no-untyped-def]
    """ERROR nodes with no ERROR ancestor, and MISSING nodes, in source order."""
    out = []
    stack = [root]
    while stack:
        n = stack.pop()
        if n.is_missing or n.type == "ERROR":
            out.append(n)
            if n.type == "ERROR":
                continue
        stack.extend(reversed(n.children))
    return out


# --- masking strings and comments with a small lexer (for the rewrites) -------------------

_FILL = "\x01"

def _blank_strings(text: str) -> str:
    """``text`` with string and comment *contents* replaced by ``\\x01`` (same length).

    A lexer of its own, because the rewrites run on text the grammar could not parse.
    Handles '…' (''), "…" (`-escapes, ""), @'…'@ / @"…"@ here-strings, # and <# #> comments.
    """
    out = list(text)
    n = len(text)
    i = 0

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = _FILL

    while i < n:
        c = text[i]
        if text.startswith("<#", i):
            j = text.find("#>", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c == "#" and (i == 0 or text[i - 1] in " \t\r\n;({|}"):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c == "@" and text[i + 1:i + 2] in ("'", '"') and re.match(r"[ \t]*\r?\n", text[i + 2:]):
            quote = text[i + 1]
            m = re.compile(r"^[ \t]*" + re.escape(quote) + "@", re.M).search(text, i + 2)
            j = n if m is None else m.end()
            blank(i + 2, j - 2 if m else j)
            i = j
        elif c in "'\u2018\u2019":
            j = i + 1
            while j < n:
                if text[j] in "'\u2018\u2019":
                    if text[j + 1:j + 2] in ("'",):
                        j += 2
                        continue
                    break
                j += 1
            blank(i + 1, j)
            i = j + 1
        elif c in '"\u201c\u201d':
            j = i + 1
            while j < n:
                if text[j] == "`":
                    j += 2
                    continue
                if text[j] in '"\u201c\u201d':
                    if text[j + 1:j + 2] == '"':
                        j += 2
                        continue
                    break
                j += 1
            blank(i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _code_bytes(text: str) -> bytearray:
    """Per UTF-8 byte of ``text``: 1 where it is code, 0 inside strings and comments."""
    flags = bytearray()
    for orig, masked in zip(text, _blank_strings(text)):
        flags.extend((1 if orig == masked else 0,) * len(orig.encode("utf-8")))
    return flags


_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-\\/:*]*")
_NATIVE_EQ = re.compile(r"(?<=[ \t])--?[A-Za-z][A-Za-z0-9_\-]*(=)")
_LONE_DASHES = re.compile(r"(?<=[ \t])--(?=[ \t]|$)", re.M)
_LOOP_LABEL = re.compile(r"(?<![\w$-])(?:break|continue)[ \t]+([A-Za-z_]\w*)", re.I)


def _rewrite_line(line: str, masked: str) -> str:
    """Length-preserving rewrites of one line for the grammar gaps (see module doc)."""
    chars = list(line)
    # 1. bare words in comma lists of command arguments → digits (an int array parses).
    for m in _BARE.finditer(masked):
        a, b = m.span()
        before = masked[:a].rstrip(" \t")
        after = masked[b:].lstrip(" \t")
        if a > 0 and masked[a - 1] not in " \t,":
            continue
        if b < len(masked) and masked[b] not in " \t,;|)}":
            continue
        if not before:
            continue  # statement start: a command name, not an argument
        prev = before[-1]
        in_list = prev == "," or after.startswith(",")
        if not in_list or (prev != "," and prev in "=(|;{[@&!"):
            continue
        if prev == ",":
            # the list must belong to a command: find what precedes the whole list
            head = re.sub(r"(?:[^\s,]+\s*,\s*)+$", "", before[:-1].rstrip() + ",").rstrip()
            if head and head[-1] in "=(|;{[@&!":
                continue
        for k in range(a, b):
            chars[k] = "1"
    # 2. native --flag=value → --flag value; 3. a lone -- argument → -_ (both native args)
    for m in _NATIVE_EQ.finditer(masked):
        chars[m.start(1)] = " "
    for m in _LONE_DASHES.finditer(masked):
        chars[m.start() + 1] = "_"
    # 4. break/continue with a loop label → the same label as a variable
    for m in _LOOP_LABEL.finditer(masked):
        chars[m.start(1)] = "$"
    return "".join(chars)


def _error_lines(tree) -> set[int]:  # type: ignore[no-untyped-def]
    rows: set[int] = set()
    for n in _error_nodes(tree.root_node):
        rows.update(range(n.start_point.row, n.end_point.row + 1))
    return rows


def _parse(script: str) -> _Parsed:
    """Parse ``script``, bridging the grammar gaps on the lines that fail (≤ 4 rounds)."""
    parser = _parser()
    text = script if script.endswith("\n") else script + "\n"
    data = text.encode("utf-8")
    tree = parser.parse(data)
    end = len(data.rstrip())
    if any(n.is_missing and n.type == ";" and n.start_byte >= end for n in _error_nodes(tree.root_node)):
        # the grammar wants a statement after a trailing param block; an empty one is legal
        text += ";\n"
        data = text.encode("utf-8")
        tree = parser.parse(data)
    for _ in range(4):
        if not tree.root_node.has_error:
            break
        rows = _error_lines(tree)
        lines = text.split("\n")
        masked = _blank_strings(text).split("\n")
        changed = False
        for row in sorted(rows):
            if row >= len(lines):
                continue
            new = _rewrite_line(lines[row], masked[row])
            if new != lines[row]:
                lines[row] = new
                changed = True
        if not changed:
            break
        text = "\n".join(lines)
        data = text.encode("utf-8")
        tree = parser.parse(data)
    return _Parsed(text=text, data=data, original=script, tree=tree)


# --- reporting ----------------------------------------------------------------------------

def _position(parsed: _Parsed, point) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """1-based line and character column of a tree-sitter point."""
    line_start = 0
    for _ in range(point.row):
        line_start = parsed.data.index(b"\n", line_start) + 1
    col = len(parsed.data[line_start:line_start + point.column].decode("utf-8", "replace"))
    return point.row + 1, col + 1


def _snippet(parsed: _Parsed, node, limit: int = 40) -> str:  # type: ignore[no-untyped-def]
    """The node's text taken from the caller's script (not the rewritten one)."""
    original = (parsed.original if parsed.original.endswith("\n") else parsed.original + "\n")
    odata = original.encode("utf-8")
    text = odata[node.start_byte:node.end_byte].decode("utf-8", "replace")
    first = text.strip().split("\n", 1)[0].strip()
    return first if len(first) <= limit else first[: limit - 1] + "…"


def parse_errors(script: str) -> list[str]:
    """Syntax errors in ``script`` as ``"line:col: snippet"`` (1-based); empty when it parses.

    ERROR nodes are reported once (outermost), MISSING nodes as ``missing "}"``.
    """
    parsed = _parse(script)
    out: list[str] = []
    for node in _error_nodes(parsed.tree.root_node):
        line, col = _position(parsed, node.start_point)
        if node.is_missing:
            what = node.type.strip() or "token"
            out.append(f'{line}:{col}: missing "{what}"')
        else:
            out.append(f"{line}:{col}: {_snippet(parsed, node) or 'unexpected input'}")
    return out


def _inside(node, types: frozenset[str]) -> bool:  # type: ignore[no-untyped-def]
    n = node
    while n is not None:
        if n.type in types:
            return True
        n = n.parent
    return False


def _canonical_command(name: str) -> str:
    base = name.rsplit("\\", 1)[-1]
    lowered = base.lower()
    if lowered in _ALIASES:
        return _ALIASES[lowered]
    return _CANONICAL.get(lowered, base)


def _match_parameter(param: str, names: frozenset[str]) -> str | None:
    p = param.lower()
    for name in sorted(names):
        n = name.lower()
        if p == n or (len(p) >= _MIN_PREFIX and n.startswith(p)):
            return name
    return None


def _question_marks(parsed: _Parsed) -> Iterator[tuple[int, str]]:
    """(byte offset, construct) for each PS7 ``?`` operator the grammar could not parse."""
    code = _code_bytes(parsed.text)
    data = parsed.data
    spans: list[tuple[int, int]] = []
    for node in _walk(parsed.tree.root_node):
        if node.type == "ERROR":
            spans.append((node.start_byte, node.end_byte))
    if not spans:
        return
    protected: list[tuple[int, int]] = []
    for node in _walk(parsed.tree.root_node):
        if node.type in _STRING_NODES or node.type in _ARGUMENT_NODES:
            protected.append((node.start_byte, node.end_byte))
    skip_until = -1
    for i in range(len(data)):
        if i < skip_until or data[i:i + 1] != b"?" or not code[i]:
            continue
        if not any(a <= i < b for a, b in spans) or any(a <= i < b for a, b in protected):
            continue
        prev = data[i - 1:i] if i else b""
        nxt = data[i + 1:i + 3]
        if prev == b"$":
            continue  # $? automatic variable
        if nxt.startswith(b"?="):
            yield i, "`??=` null-coalescing assignment"
            skip_until = i + 3
        elif nxt.startswith(b"?"):
            yield i, "`??` null-coalescing operator"
            skip_until = i + 2
        elif nxt[:1] in (b".", b"[") and prev not in (b" ", b"\t", b""):
            yield i, f"`?{nxt[:1].decode()}` null-conditional access"
        elif prev in (b" ", b"\t", b")") and nxt[:1] in (b" ", b"\t", b"\r", b"\n", b"("):
            line_end = data.find(b"\n", i)
            stop = len(data) if line_end < 0 else line_end
            rest = bytes(b for k, b in enumerate(data[i + 1:stop], i + 1) if code[k])
            before = data[data.rfind(b"\n", 0, i) + 1:i].rstrip()
            if b":" in rest and before and not before.endswith(b"|"):
                yield i, "`? :` ternary operator"


def _expandable_escapes(parsed: _Parsed, node) -> Iterator[tuple[int, str]]:  # type: ignore[no-untyped-def]
    raw = parsed.data[node.start_byte:node.end_byte]
    k = 0
    while k < len(raw) - 1:
        if raw[k:k + 1] == b"`":
            esc = raw[k + 1:k + 2]
            if esc == b"e":
                yield node.start_byte + k, "`` `e `` escape (ESC) in a string"
            elif esc == b"u" and raw[k + 2:k + 3] == b"{":
                yield node.start_byte + k, "`` `u{…} `` escape in a string"
            k += 2
            continue
        k += 1


def _point_at(parsed: _Parsed, offset: int) -> tuple[int, int]:
    line = parsed.data.count(b"\n", 0, offset)
    start = parsed.data.rfind(b"\n", 0, offset) + 1
    col = len(parsed.data[start:offset].decode("utf-8", "replace"))
    return line + 1, col + 1


def ps7_only_constructs(script: str) -> list[str]:
    """PowerShell 6/7-only syntax in ``script`` as ``"line:col: what"``, in source order.

    Found on the syntax tree, so text inside strings and comments never matches:
    ``&&``/``||`` pipeline chains, ``??``, ``??=``, ``?.``/``?[``, the ``? :`` ternary,
    the trailing ``&`` background operator, ``-Parallel`` (and the other parameters in
    :data:`PS7_PARAMETERS`, abbreviations of 6+ characters included), cmdlets in
    :data:`PS7_CMDLETS`, ``-Encoding utf8NoBOM``, the variables in :data:`PS7_VARIABLES`,
    splatted hashtable keys for PS7-only web parameters, and `` `e ``/`` `u{} `` escapes.
    """
    parsed = _parse(script)
    found: list[tuple[int, str]] = []
    data = parsed.data
    for node in _walk(parsed.tree.root_node):
        kind = node.type
        if kind == "pipeline_chain_tail":
            op = data[node.start_byte:node.end_byte].decode().strip()
            found.append((node.start_byte, f"`{op}` pipeline chain operator"))
        elif kind == "command":
            found.extend(_command_findings(parsed, node))
        elif kind == "variable":
            name = data[node.start_byte:node.end_byte].decode("utf-8", "replace")
            bare = name.lstrip("$").strip("{}").lower()
            if bare in PS7_VARIABLES:
                found.append((node.start_byte, f"`{PS7_VARIABLES[bare]}` automatic variable ($null in 5.1)"))
        elif kind == "key_expression":
            key = data[node.start_byte:node.end_byte].decode("utf-8", "replace").strip("'\" ").lower()
            if key in _PS7_SPLAT_KEYS:
                found.append((node.start_byte, f"`{_PS7_SPLAT_KEYS[key]}` web parameter in a splatting hashtable"))
        elif kind in ("expandable_string_literal", "expandable_here_string_literal"):
            found.extend(_expandable_escapes(parsed, node))
        elif kind == "ERROR":
            text = data[node.start_byte:node.end_byte].decode("utf-8", "replace")
            m = re.search(r"(?<![&\d>])&[ \t]*$", text.split("\n", 1)[0])
            if m and not _inside(node.parent, frozenset({"ERROR"})):
                found.append((node.start_byte + len(text.split("\n", 1)[0][: m.start()].encode()),
                              "`&` background operator"))
    found.extend(_question_marks(parsed))
    seen: set[tuple[int, str]] = set()
    out: list[str] = []
    for offset, what in sorted(found):
        if (offset, what) in seen:
            continue
        seen.add((offset, what))
        line, col = _point_at(parsed, offset)
        out.append(f"{line}:{col}: {what} (PowerShell 7+)")
    return out


def _command_findings(parsed: _Parsed, node) -> Iterator[tuple[int, str]]:  # type: ignore[no-untyped-def]
    data = parsed.data
    name_node = node.child_by_field_name("command_name")
    if name_node is None:
        return
    raw_name = data[name_node.start_byte:name_node.end_byte].decode("utf-8", "replace")
    name = _canonical_command(raw_name)
    if name.lower() in PS7_CMDLETS:
        yield name_node.start_byte, f"`{PS7_CMDLETS[name.lower()]}` cmdlet"
        return
    elements = node.child_by_field_name("command_elements")
    if elements is None:
        return
    own = PS7_PARAMETERS.get(name, frozenset())
    params = own | PS7_PARAMETERS["*"] | {"Parallel"}
    children = [c for c in elements.named_children if c.type != "command_argument_sep"]
    for i, child in enumerate(children):
        if child.type != "command_parameter":
            continue
        param = data[child.start_byte:child.end_byte].decode("utf-8", "replace").lstrip("-").rstrip(":")
        hit = _match_parameter(param, params)
        if hit:
            label = f"{name} -{hit}" if hit in own else f"-{hit}"
            yield child.start_byte, f"`{label}` parameter"
            continue
        if param.lower() == "encoding" and name in _ENCODING_CMDLETS and i + 1 < len(children):
            value = data[children[i + 1].start_byte:children[i + 1].end_byte].decode("utf-8", "replace")
            value = value.strip("'\" ").lower()
            if value in _PS7_ENCODINGS:
                yield children[i + 1].start_byte, (
                    f"`-Encoding {_PS7_ENCODINGS[value]}`; in 5.1 write the bytes with "
                    f"[IO.File]::WriteAllText and UTF8Encoding($false)"
                )


def assert_windows_powershell(script: str, *, name: str = "script") -> None:
    """Fail (AssertionError) if ``script`` does not parse or uses PowerShell 7-only syntax."""
    problems = [f"syntax {p}" for p in parse_errors(script)] + ps7_only_constructs(script)
    if problems:
        raise AssertionError(
            f"{name} is not valid Windows PowerShell 5.1:\n  " + "\n  ".join(problems)
        )
