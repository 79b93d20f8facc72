"""Version pins: parsing, validation and the asset names that depend on them (field case C01)."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

KNOWN_PINS = frozenset({"containerd", "runc", "cni-plugins", "windows-cni", "crictl", "hns-module-commit"})
"""The pin keys the built-in components read (an unknown key in versions.toml is a typo)."""


class VersionError(ValueError):
    """A pin that cannot be used; the message names the key and the expected form."""


@dataclass(frozen=True, order=True)
class Version:
    """A full release version. ``str()`` has no leading ``v``; ``tag`` has exactly one."""

    major: int
    minor: int
    patch: int
    pre: str = ""

    @classmethod
    def parse(cls, text: str, key: str = "version") -> Version:
        """Accept ``1.7.20`` and ``v1.7.20`` alike; refuse ``latest``, ``1.7``, ``1.7.x``."""
        m = _SEMVER.match(str(text).strip())
        if not m:
            raise VersionError(
                f"{key} = {text!r} is not a full release version: "
                f"write it as MAJOR.MINOR.PATCH, e.g. \"1.7.20\" (a leading v is optional)"
            )
        return cls(int(m[1]), int(m[2]), int(m[3]), m[4] or "")

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.pre}" if self.pre else "")

    @property
    def tag(self) -> str:
        return f"v{self}"


def parse_pin(key: str, value: object, source: str = "versions.toml") -> str:
    """Normalise one pin: a release version (no ``v``) or, for ``*-commit`` keys, a 40-hex commit."""
    if not isinstance(value, str):
        raise VersionError(f"{source}: {key} must be a string such as \"1.7.20\", not {value!r}")
    if key.endswith("-commit"):
        if not _COMMIT.match(value):
            raise VersionError(f"{source}: {key} = {value!r} must be a full 40-hex git commit")
        return value
    return str(Version.parse(value, f"{source}: {key}"))


@dataclass
class Pins:
    """What ``versions.toml`` (plus ``[versions]`` in dockless.toml) pins."""

    versions: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    source: str = "versions.toml"

    def version(self, key: str) -> Version:
        if key not in self.versions:
            raise VersionError(f"{self.source}: no pin for {key!r}: add {key} = \"X.Y.Z\"")
        return Version.parse(self.versions[key], f"{self.source}: {key}")

    def commit(self, key: str) -> str:
        if key not in self.versions:
            raise VersionError(f"{self.source}: no pin for {key!r}: add {key} = \"<40-hex commit>\"")
        return self.versions[key]

    def merged(self, overrides: dict[str, object], source: str, known: set[str] | frozenset[str] | None = None) -> Pins:
        pins = Pins(dict(self.versions), dict(self.sha256), self.source)
        for key, value in overrides.items():
            if key == "sha256":
                if not isinstance(value, dict):
                    raise VersionError(f"{source}: sha256 must be a table of \"asset-file-name\" = \"<64 hex digits>\"")
                pins.sha256.update(_checked_sha256(value, source))
            else:
                _check_known(key, known, source)
                pins.versions[key] = parse_pin(key, value, source)
        return pins


def _check_known(key: str, known: set[str] | frozenset[str] | None, source: str) -> None:
    if known is None or key in known:
        return
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise VersionError(f"{source}: unknown component {key!r}; {hint}known: {', '.join(sorted(known))}")


def _checked_sha256(table: dict[str, object], source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for asset, digest in table.items():
        if not isinstance(digest, str) or not _SHA256.match(digest.lower()):
            raise VersionError(f"{source}: [sha256] {asset!r} must be 64 hex digits")
        out[asset] = digest.lower()
    return out


def load_pins(path: Path, known: set[str] | frozenset[str] | None = None) -> Pins:
    """Read and validate ``versions.toml``: top-level ``key = "version"`` and a ``[sha256]`` table
    keyed by asset file name. ``known`` limits the keys (an unknown key is a typo)."""
    from dockless.files import read_toml

    data = read_toml(path, VersionError, what="a versions.toml file")
    if data is None:
        return Pins(source=str(path))
    pins = Pins(source=path.name)
    for key, value in data.items():
        if key == "sha256":
            if not isinstance(value, dict):
                raise VersionError(f"{path.name}: sha256 must be a table of asset = \"hex\"")
            pins.sha256.update(_checked_sha256(value, path.name))
            continue
        _check_known(key, known, path.name)
        pins.versions[key] = parse_pin(key, value, path.name)
    return pins
