"""Verified, cached, resumable downloads of release assets.

An :class:`Artifact` names candidate URLs (the first that exists wins: renamed assets)
and, in parallel, their published checksum URLs.  :func:`fetch` resolves the expected
sha256 (pinned, else the published checksum file), returns the cached blob when present
(no request at all), else streams the asset to a ``.part`` file while hashing, resumes
with HTTP ``Range`` after a cut, retries transient failures with backoff, verifies, and
only then moves the blob into the content-addressed :class:`Cache`.

URLs may be ``http(s)://``, ``file://`` or a plain local path (an offline bundle used as
a mirror).  requests honours ``HTTPS_PROXY``/``NO_PROXY`` and ``REQUESTS_CA_BUNDLE``; TLS
verification is never disabled.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import requests
import urllib3

from dockless import __version__, killpoint
from dockless.artifact import Artifact
from dockless.cache import Cache
from dockless.checksums import ChecksumError, parse_checksum
from dockless.progress import PlainReporter, ProgressFn, RichReporter
from dockless.urls import DRIVE_PATH, url_basename
from dockless.writeback import Writeback

__all__ = [
    "Artifact",
    "Cache",
    "DownloadCancelled",
    "DownloadError",
    "Unreachable",
    "FetchStats",
    "RetryPolicy",
    "STATS",
    "Published",
    "fetch",
    "fetch_all",
    "published_checksum",
]

CHUNK = 1 << 20  # 1 MiB: read size from the socket and write size to disk
TIMEOUT = (15.0, 60.0)  # connect, read (seconds between bytes)
USER_AGENT = f"dockless/{__version__}"
_NOT_FOUND = (404, 410)
_TRANSIENT = (408, 425, 429, 500, 502, 503, 504)


class DownloadError(Exception):
    """A download failed; the message is one line naming the artifact and the URL."""


class DownloadCancelled(DownloadError):
    """The download was stopped because another one in :func:`fetch_all` failed."""


UNREACHABLE_HINT = ("check the network, or set DOCKLESS_MIRROR to a reachable mirror (or a folder written by "
                    "`invoke bundle`), or HTTPS_PROXY if this network needs a proxy")


class Unreachable(DownloadError):
    """No connection to a host after every retry (offline, refused, DNS): :func:`fetch_all`
    folds these into one line per host."""

    def __init__(self, label: str, url: str, reason: str, attempts: int) -> None:
        self.label, self.url, self.reason, self.attempts = label, url, reason, attempts
        self.host = urlsplit(url).netloc or url
        super().__init__(f"{label}: {url} failed after {attempts} attempts: cannot reach {self.host} "
                         f"({reason}); {UNREACHABLE_HINT}")

    @staticmethod
    def combined(errors: Sequence[Unreachable]) -> Unreachable:
        """One error for several artifacts that could not reach the same host."""
        first = errors[0]
        labels = [e.label for e in errors]
        joined = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
        err = Unreachable(first.label, first.url, first.reason, first.attempts)
        err.args = (f"{joined}: cannot reach {first.host} ({first.reason}, {first.attempts} attempts); "
                    f"{UNREACHABLE_HINT}",)
        return err


_CAUSES = (
    ("Connection refused", "connection refused"),
    ("Failed to resolve", "its name does not resolve"),
    ("Name or service not known", "its name does not resolve"),
    ("Temporary failure in name resolution", "its name does not resolve"),
    ("nodename nor servname", "its name does not resolve"),
    ("getaddrinfo failed", "its name does not resolve"),
    ("Network is unreachable", "network unreachable"),
    ("No route to host", "no route to host"),
    ("timed out", "timed out"),
    ("Connection reset", "connection reset"),
    ("RemoteDisconnected", "the server closed the connection"),
)


def _connection_reason(exc: BaseException) -> str:
    """The cause of a failed connection in a few words (requests' message is a nested repr
    that is cut mid-cause when shortened)."""
    text = str(exc)
    for needle, reason in _CAUSES:
        if needle in text:
            return reason
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    return m.group(1).strip() if m else _one_line(text, 120)


# the model lives in dockless.artifact (no requests import: `plan` stays fast)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff; *sleep* is injectable for tests.

    *attempts* counts consecutive failures without progress (a cut that brought new
    bytes resets it, the next try resumes).
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_retry_after))
        return min(self.max_delay, self.base_delay * (2 ** (failures - 1)))


@dataclass
class FetchStats:
    """Thread-safe counters (benchmarks, tests, the ``setup`` summary)."""

    bytes_downloaded: int = 0  # body bytes received over HTTP
    bytes_copied: int = 0  # bytes read from file:// or plain-path mirrors
    requests: int = 0  # HTTP requests sent (assets and checksum files)
    cache_hits: int = 0
    downloads: int = 0  # blobs added to the cache
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


STATS = FetchStats()
"""Process-wide counters used when no ``stats`` is passed."""


# ----------------------------------------------------------------------------- urls
def _kind(url: str) -> str:
    if DRIVE_PATH.match(url):
        return "path"
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return "http"
    if scheme == "file":
        return "file"
    if scheme == "":
        return "path"
    raise DownloadError(f"unsupported URL scheme {scheme!r} in {url}")


def _local_path(url: str) -> Path:
    if _kind(url) == "file":
        parts = urlsplit(url)
        path = url2pathname(unquote(parts.path)) if os.name == "nt" else unquote(parts.path)
        if parts.netloc and parts.netloc != "localhost":
            path = f"//{parts.netloc}{path}"
        return Path(path)
    return Path(url)


def _missing(url: str) -> str:
    return f"{url} returned 404 Not Found" if _kind(url) == "http" else f"{url} does not exist"


def _one_line(text: object, limit: int = 240) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


# ----------------------------------------------------------------------------- fetch
def _new_session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8)
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    return s


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _proxy_for(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        if os.environ.get(name):
            return f"{name.upper()}={os.environ[name]}"
    return "the configured proxy"


@dataclass
class _Outcome:
    path: Path
    url: str
    cached: bool
    size: int


class _Fetcher:
    """One artifact's fetch: candidate loop, checksum, cache, transfer, verification."""

    def __init__(
        self,
        artifact: Artifact,
        cache: Cache,
        session: requests.Session,
        progress: ProgressFn | None,
        retry: RetryPolicy,
        stats: FetchStats,
        cancel: threading.Event | None,
    ) -> None:
        self.a = artifact
        self.cache = cache
        self.session = session
        self.progress = progress
        self.retry = retry
        self.stats = stats
        self.cancel = cancel

    # -- candidate loop ------------------------------------------------------------
    def run(self) -> _Outcome:
        for u in (*self.a.urls, *self.a.checksum_urls):
            if u is not None:
                try:
                    _kind(u)
                except DownloadError as e:
                    raise DownloadError(f"{self.a.label}: {e}") from None
        missing: list[str] = []
        for i, url in enumerate(self.a.urls):
            self._check_cancel()
            expected = self.a.sha256
            cs_url = self.a.checksum_url(i)
            if expected is None and cs_url is not None:
                text = self._checksum_text(cs_url)
                if text is None:
                    missing.append(_missing(cs_url))
                    continue
                try:
                    expected = parse_checksum(text, url_basename(url), source=cs_url)
                except ChecksumError as e:
                    self.cache.drop_checksum_text(cs_url)
                    raise DownloadError(f"{self.a.label}: {e}") from None
            if expected is None and not self.a.allow_unverified:
                raise DownloadError(
                    f"{self.a.label}: no published checksum for {url}; pin its sha256 in versions.toml"
                )
            known = expected or self.cache.recorded_sha256(url)
            hit = self.cache.get(known) if known else None
            if hit is not None:
                self.stats.add(cache_hits=1)
                size = hit.stat().st_size
                if self.progress:
                    self.progress(self.a.key, size, size)
                return _Outcome(hit, url, True, size)
            outcome = self._transfer(url, expected, cs_url)
            if outcome is None:
                missing.append(_missing(url))
                continue
            return outcome
        first, rest = missing[0], missing[1:]
        also = f" (also tried {'; '.join(rest)})" if rest else ""
        raise DownloadError(
            f"{self.a.label}: {first}{also}; check [versions] {self.a.key} in versions.toml"
        )

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(f"{self.a.label}: cancelled")

    # -- checksum files --------------------------------------------------------------
    def _checksum_text(self, url: str) -> str | None:
        """Checksum file text (from the cache when seen before); None when it does not exist."""
        text = self.cache.checksum_text(url)
        if text is not None:
            return text
        if _kind(url) != "http":
            try:
                data = _local_path(url).read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                return None
            text = data.decode("utf-8", "replace")
        else:
            failures = 0
            while True:
                resp = self._request(url, {})
                if resp is None:
                    failures += 1
                    self._backoff(url, failures, self._last_error, unreachable=True)
                    continue
                with resp:
                    if resp.status_code in _NOT_FOUND:
                        return None
                    if resp.status_code in _TRANSIENT:
                        failures += 1
                        self._backoff(url, failures, self._status(resp), _retry_after(resp))
                        continue
                    if resp.status_code != 200:
                        raise DownloadError(f"{self.a.label}: {url} returned {self._status(resp)}")
                    try:
                        data = resp.content
                    except (requests.ConnectionError, requests.Timeout) as e:
                        failures += 1
                        self._backoff(url, failures, _one_line(e))
                        continue
                    self.stats.add(bytes_downloaded=len(data))
                    text = data.decode("utf-8", "replace")
                    break
        self.cache.store_checksum_text(url, text)
        return text

    # -- HTTP plumbing -----------------------------------------------------------------
    _last_error = ""

    def _request(self, url: str, headers: dict[str, str]) -> requests.Response | None:
        """GET (streamed); None on a transient connection failure (see ``_last_error``)."""
        self.stats.add(requests=1)
        try:
            return self.session.get(url, headers=headers, stream=True, timeout=TIMEOUT)
        except requests.exceptions.SSLError as e:
            raise DownloadError(
                f"{self.a.label}: TLS verification failed for {url}: {_one_line(e, 160)}; "
                "behind an intercepting proxy set REQUESTS_CA_BUNDLE to its CA bundle"
            ) from None
        except requests.exceptions.ProxyError as e:
            raise DownloadError(
                f"{self.a.label}: proxy error for {url} via {_proxy_for(url)}: {_one_line(e, 160)}; "
                "check HTTPS_PROXY/HTTP_PROXY and NO_PROXY"
            ) from None
        except (requests.ConnectionError, requests.Timeout) as e:
            self._last_error = _connection_reason(e)
            return None
        except requests.exceptions.InvalidURL as e:
            raise DownloadError(f"{self.a.label}: invalid URL {url}: {_one_line(e)}") from None

    @staticmethod
    def _status(resp: requests.Response) -> str:
        return f"{resp.status_code} {resp.reason or ''}".strip()

    def _backoff(self, url: str, failures: int, reason: str, retry_after: float | None = None,
                 unreachable: bool = False) -> None:
        if failures >= self.retry.attempts:
            if unreachable:  # never connected: name the host and what to do
                raise Unreachable(self.a.label, url, reason, failures)
            raise DownloadError(f"{self.a.label}: {url} failed after {failures} attempts: {reason}")
        self._check_cancel()
        self.retry.sleep(self.retry.delay(failures, retry_after))

    # -- asset transfer ------------------------------------------------------------------
    def _transfer(self, url: str, expected: str | None, cs_url: str | None) -> _Outcome | None:
        if _kind(url) == "http":
            return self._transfer_http(url, expected, cs_url)
        return self._transfer_local(url, expected, cs_url)

    def _transfer_local(self, url: str, expected: str | None, cs_url: str | None) -> _Outcome | None:
        src = _local_path(url)
        if not src.is_file():
            return None
        part = self.cache.part_path(url)
        part.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        total = src.stat().st_size
        done = 0
        with open(src, "rb") as fin, open(part, "wb") as fout:
            wb = Writeback(fout, enabled=self.cache.fsync)
            while chunk := fin.read(CHUNK):
                self._check_cancel()
                fout.write(chunk)
                h.update(chunk)
                wb.wrote(len(chunk))
                done += len(chunk)
                killpoint.progressed("download", len(chunk))  # test hook; a no-op otherwise
                if self.progress:
                    self.progress(self.a.key, done, total)
            wb.finish()
        self.stats.add(bytes_copied=done)
        return self._finish(url, part, h.hexdigest(), expected, cs_url, done)

    def _transfer_http(self, url: str, expected: str | None, cs_url: str | None) -> _Outcome | None:
        part = self.cache.part_path(url)
        part.parent.mkdir(parents=True, exist_ok=True)
        failures = 0
        restarted = resumed = False
        while True:
            self._check_cancel()
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            resp = self._request(url, headers)
            if resp is None:
                failures += 1
                self._backoff(url, failures, self._last_error, unreachable=True)
                continue
            with resp:
                code = resp.status_code
                if code in _NOT_FOUND:
                    part.unlink(missing_ok=True)
                    return None
                if code == 416 and offset:
                    part.unlink(missing_ok=True)  # stale or complete part: start over
                    failures += 1
                    self._backoff(url, failures, "416 Range Not Satisfiable", 0.0)
                    continue
                if code in _TRANSIENT:
                    failures += 1
                    self._backoff(url, failures, self._status(resp), _retry_after(resp))
                    continue
                if code == 206:
                    if not offset or not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                        part.unlink(missing_ok=True)  # not the range we asked for: start over
                        failures += 1
                        self._backoff(url, failures, "unexpected 206 Content-Range", 0.0)
                        continue
                    resumed = True
                    total = _content_range_total(resp) or _int(resp.headers.get("Content-Length"), offset)
                elif code == 200:
                    offset = 0
                    total = _int(resp.headers.get("Content-Length"))
                else:
                    raise DownloadError(f"{self.a.label}: {url} returned {self._status(resp)}")
                h = hashlib.sha256()
                if offset:
                    _hash_file(part, h)
                received, error = self._stream(resp, part, h, offset, total)
            if error is not None:
                if received:
                    failures = 0  # progress was made: the next attempt resumes
                failures += 1
                self._backoff(url, failures, error)
                continue
            actual = h.hexdigest()
            if expected is not None and actual != expected and resumed and not restarted:
                part.unlink(missing_ok=True)  # a resumed part may be stale: one clean retry
                restarted = True
                resumed = False
                continue
            return self._finish(url, part, actual, expected, cs_url, offset + received)

    def _stream(
        self, resp: requests.Response, part: Path, h: hashlib._Hash, offset: int, total: int | None
    ) -> tuple[int, str | None]:
        """Append the body to *part* while hashing; (bytes received, error or None)."""
        received = 0
        length = _int(resp.headers.get("Content-Length"))
        try:
            with open(part, "ab" if offset else "wb") as f:
                wb = Writeback(f, offset, enabled=self.cache.fsync)  # the cache's fsync then has little left
                for chunk in _body_chunks(resp):
                    f.write(chunk)
                    h.update(chunk)
                    wb.wrote(len(chunk))
                    received += len(chunk)
                    killpoint.progressed("download", len(chunk))  # test hook; a no-op otherwise
                    self.stats.add(bytes_downloaded=len(chunk))
                    if self.progress:
                        self.progress(self.a.key, offset + received, total)
                    self._check_cancel()
                wb.finish()
        except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError) as e:
            return received, f"connection lost after {offset + received} bytes: {_one_line(e, 120)}"
        if length is not None and received != length:
            return received, f"body cut after {offset + received} bytes"
        return received, None

    def _finish(
        self, url: str, part: Path, actual: str, expected: str | None, cs_url: str | None, size: int
    ) -> _Outcome:
        if expected is not None and actual != expected:
            part.unlink(missing_ok=True)
            if cs_url is not None:
                self.cache.drop_checksum_text(cs_url)
            raise DownloadError(
                f"{self.a.label}: sha256 mismatch for {url}: expected {expected}, got {actual}; nothing was cached"
            )
        path = self.cache.install(part, actual)
        if expected is None:
            self.cache.record_sha256(url, actual)
        self.stats.add(downloads=1)
        return _Outcome(path, url, False, size)


def _body_chunks(resp: requests.Response) -> Iterator[bytes]:
    """Body chunks of up to CHUNK bytes.

    urllib3 >= 2.3 ``read1`` hands over what arrived before a cut (``iter_content``
    would drop a partly filled chunk), so a resumed download loses nothing.
    """
    raw = resp.raw
    if not hasattr(raw, "read1"):
        yield from resp.iter_content(CHUNK)
        return
    while chunk := raw.read1(CHUNK, decode_content=True):
        yield chunk


def _int(value: str | None, plus: int = 0) -> int | None:
    try:
        return int(value) + plus if value is not None else None
    except ValueError:
        return None


def _content_range_total(resp: requests.Response) -> int | None:
    m = re.match(r"bytes \d+-\d+/(\d+)$", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None


def _hash_file(path: Path, h: hashlib._Hash) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)


def fetch(
    artifact: Artifact,
    cache: Cache,
    *,
    session: requests.Session | None = None,
    progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
    stats: FetchStats | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Fetch *artifact* into *cache* and return the verified blob's path.

    Raises :class:`DownloadError` (one line) on 404 for every candidate, a missing or
    unusable checksum (unless ``allow_unverified``), a sha256 mismatch (nothing is
    cached), TLS or proxy errors, or when retries are exhausted.
    """
    return _fetch(artifact, cache, session=session, progress=progress, retry=retry, stats=stats, cancel=cancel).path


def _fetch(
    artifact: Artifact,
    cache: Cache,
    *,
    session: requests.Session | None,
    progress: ProgressFn | None,
    retry: RetryPolicy | None,
    stats: FetchStats | None,
    cancel: threading.Event | None,
) -> _Outcome:
    own = session is None
    sess = session if session is not None else _new_session()
    try:
        fetcher = _Fetcher(artifact, cache, sess, progress, retry or RetryPolicy(), stats or STATS, cancel)
        return fetcher.run()
    finally:
        if own:
            sess.close()


@dataclass(frozen=True)
class Published:
    """The checksum a release publishes for one asset candidate (:func:`published_checksum`)."""

    url: str  # the asset candidate the checksum file belongs to
    checksum_url: str
    text: str  # the checksum file as published (bundles copy it next to the asset)
    sha256: str


def published_checksum(
    artifact: Artifact,
    cache: Cache,
    *,
    session: requests.Session | None = None,
    retry: RetryPolicy | None = None,
    stats: FetchStats | None = None,
) -> Published | None:
    """The sha256 the release publishes for *artifact*, ignoring any pin: the first candidate
    whose checksum file exists, read (and cached) as :func:`fetch` reads it.  None when no
    candidate has a checksum URL; :class:`DownloadError` when none of them exists."""
    if not any(artifact.checksum_urls):
        return None
    own = session is None
    sess = session if session is not None else _new_session()
    try:
        fetcher = _Fetcher(artifact, cache, sess, None, retry or RetryPolicy(), stats or STATS, None)
        missing: list[str] = []
        for i, url in enumerate(artifact.urls):
            cs_url = artifact.checksum_url(i)
            if cs_url is None:
                continue
            try:
                _kind(url)
                _kind(cs_url)
            except DownloadError as e:
                raise DownloadError(f"{artifact.label}: {e}") from None
            text = fetcher._checksum_text(cs_url)
            if text is None:
                missing.append(_missing(cs_url))
                continue
            try:
                return Published(url, cs_url, text, parse_checksum(text, url_basename(url), source=cs_url))
            except ChecksumError as e:
                cache.drop_checksum_text(cs_url)
                raise DownloadError(f"{artifact.label}: {e}") from None
        also = f" (also tried {'; '.join(missing[1:])})" if len(missing) > 1 else ""
        raise DownloadError(f"{artifact.label}: {missing[0]}{also}; check [versions] {artifact.key} in versions.toml")
    finally:
        if own:
            sess.close()


# ----------------------------------------------------------------------------- many
def fetch_all(
    artifacts: Sequence[Artifact],
    cache: Cache,
    *,
    max_workers: int = 4,
    progress: bool | None = None,
    retry: RetryPolicy | None = None,
    stats: FetchStats | None = None,
) -> dict[str, Path]:
    """Fetch *artifacts* in parallel; return ``{artifact.key: blob path}``.

    *progress*: True shows rich progress bars on stderr, False prints one plain line
    per artifact, None picks rich when stderr is a terminal.  On failure the remaining
    downloads are cancelled (partial files are kept for resuming), and the first error
    is raised once every worker has stopped.
    """
    keys = [a.key for a in artifacts]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate artifact keys: {', '.join(dupes)}")
    if not artifacts:
        return {}
    if progress is None:
        progress = sys.stderr.isatty()
    reporter: PlainReporter | RichReporter = RichReporter(artifacts) if progress else PlainReporter(sys.stderr)
    cancel = threading.Event()
    results: dict[str, Path] = {}
    errors: list[BaseException] = []

    def work(a: Artifact) -> _Outcome:
        start = time.monotonic()
        try:
            o = _fetch(a, cache, session=None, progress=reporter.callback(a.key), retry=retry, stats=stats, cancel=cancel)
        except BaseException as e:
            reporter.failed(a, cancelled=isinstance(e, DownloadCancelled))
            raise
        reporter.done(a, o, time.monotonic() - start)
        return o

    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(artifacts))), thread_name_prefix="dockless-dl")
    try:
        futures: dict[Future[_Outcome], Artifact] = {pool.submit(work, a): a for a in artifacts}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                if fut.cancelled():
                    continue
                exc = fut.exception()
                if exc is None:
                    results[futures[fut].key] = fut.result().path
                elif not isinstance(exc, DownloadCancelled):
                    errors.append(exc)
            if errors and not cancel.is_set():
                cancel.set()
                for fut in pending:
                    fut.cancel()
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        reporter.close()
    if errors:
        first = errors[0]
        if isinstance(first, Unreachable):  # one line for every artifact that could not reach that host
            same = [e for e in errors if isinstance(e, Unreachable) and e.host == first.host]
            errors = [Unreachable.combined(same)] + [e for e in errors if e not in same]
        for other in errors[1:]:  # the first is raised: its message is the caller's one line
            print(f"dockless: {_one_line(other)}", file=sys.stderr, flush=True)
        raise errors[0]
    missing = [k for k in keys if k not in results]
    if missing:  # pragma: no cover - only when a worker was cancelled without a cause
        raise DownloadCancelled(f"{', '.join(missing)}: cancelled")
    return {k: results[k] for k in keys}
