"""The content-addressed download cache (:class:`Cache`): verified blobs by sha256, the checksum
files read and the partial downloads, so that a second run sends no request."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import platformdirs

from dockless.checksums import is_sha256
from dockless.urls import url_basename


def _url_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


class Cache:
    """Content-addressed blob cache: ``root/sha256/<hex>``.

    Also keeps checksum texts by URL (``root/checksums/``), the sha256 of unverified
    downloads by URL (``root/urls/``) and partial downloads (``root/partial/``), so a
    second run with everything cached sends no request.  *root* defaults to
    ``$DOCKLESS_CACHE``, else ``platformdirs.user_cache_dir("dockless")/blobs``.
    """

    def __init__(self, root: Path | None = None, *, fsync: bool = True) -> None:
        if root is None:
            env = os.environ.get("DOCKLESS_CACHE")
            root = Path(env) if env else Path(platformdirs.user_cache_dir("dockless")) / "blobs"
        self.root = Path(root)
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    def blob_path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256.lower()

    def digest(self, blob: Path) -> str | None:
        """The sha256 a blob of this cache is stored under (what it was verified as), else None."""
        blob = Path(blob)
        return blob.name if blob.parent == self.root / "sha256" and is_sha256(blob.name) else None

    def get(self, sha256: str) -> Path | None:
        """Path of the cached blob with this digest, or None."""
        p = self.blob_path(sha256)
        return p if p.is_file() else None

    def part_path(self, url: str) -> Path:
        """Stable ``.part`` file for *url* (kept between runs so downloads resume)."""
        return self.root / "partial" / f"{_url_id(url)}-{url_basename(url) or 'blob'}.part"

    def install(self, part: Path, sha256: str) -> Path:
        """Move a verified *part* file into the cache (atomic) and return the blob path."""
        dest = self.blob_path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.fsync:
            with open(part, "rb") as f:
                os.fsync(f.fileno())
        os.replace(part, dest)
        return dest

    def checksum_text(self, url: str) -> str | None:
        p = self.root / "checksums" / _url_id(url)
        try:
            return p.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def store_checksum_text(self, url: str, text: str) -> None:
        self._write_small(self.root / "checksums" / _url_id(url), text)

    def drop_checksum_text(self, url: str) -> None:
        (self.root / "checksums" / _url_id(url)).unlink(missing_ok=True)

    def recorded_sha256(self, url: str) -> str | None:
        """Digest recorded for an unverified download of *url*, if any."""
        try:
            value = (self.root / "urls" / _url_id(url)).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        return value if is_sha256(value) else None

    def record_sha256(self, url: str, sha256: str) -> None:
        self._write_small(self.root / "urls" / _url_id(url), sha256)

    @staticmethod
    def _write_small(path: Path, text: str) -> None:
        # Not files.atomic_write: parallel downloads may write the same checksum file at once,
        # and atomic_write sweeps every temp file of its path (a killed run's), theirs included.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
