"""What one release asset is: its candidate URLs, checksum files and pinned sha256.

Kept apart from :mod:`dockless.download` so that planning (which only describes artifacts)
never imports requests.
"""
from __future__ import annotations

from dataclasses import dataclass

from dockless.checksums import is_sha256
from dockless.urls import url_basename


@dataclass(frozen=True)
class Artifact:
    """One asset to fetch.

    *urls* are candidates in order (an asset renamed upstream: the first that exists
    wins).  *checksum_urls* runs parallel to *urls* (None: nothing published; an empty
    tuple means none for every candidate).  A pinned *sha256* wins over the published
    one.  Without either, fetching fails unless *allow_unverified*.
    """

    key: str
    version: str
    urls: tuple[str, ...]
    checksum_urls: tuple[str | None, ...] = ()
    sha256: str | None = None
    allow_unverified: bool = False
    pin_key: str | None = None  # its key in versions.toml [sha256] when not the asset file name

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", (self.urls,) if isinstance(self.urls, str) else tuple(self.urls))
        object.__setattr__(self, "checksum_urls", tuple(self.checksum_urls))
        if not self.urls:
            raise ValueError(f"artifact {self.key}: no URL")
        if self.checksum_urls and len(self.checksum_urls) != len(self.urls):
            raise ValueError(f"artifact {self.key}: checksum_urls must be parallel to urls")
        if self.sha256 is not None:
            if not is_sha256(self.sha256):
                raise ValueError(f"artifact {self.key}: sha256 must be 64 hex digits, got {self.sha256!r}")
            object.__setattr__(self, "sha256", self.sha256.lower())

    @property
    def label(self) -> str:
        return f"{self.key} {self.version}"

    @property
    def filename(self) -> str:
        """Basename of the first candidate URL (the asset's file name)."""
        return url_basename(self.urls[0])

    def checksum_url(self, index: int) -> str | None:
        return self.checksum_urls[index] if self.checksum_urls else None
