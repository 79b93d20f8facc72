"""A small threaded HTTP server on 127.0.0.1 for download tests and benchmarks.

It serves a dict of path -> bytes (or a file :class:`~pathlib.Path`, streamed with
``sendfile``), counts requests and body bytes per path, and can be told per path to
answer a sequence of error statuses first (404, 503, 429 with ``Retry-After``), to cut
the body once after N bytes, or to ignore ``Range`` requests::

    with LocalHTTPServer() as srv:
        srv.add("/a.tgz", data, statuses=[503], cut_after=1000)
        url = srv.url("/a.tgz")
"""
from __future__ import annotations

import re
import socket
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["LocalHTTPServer", "Route"]

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 1 << 20


@dataclass
class Route:
    """What one path serves and how it misbehaves."""

    body: bytes | Path
    statuses: list[int] = field(default_factory=list)  # answered first, one per request
    retry_after: str | None = None  # Retry-After header sent with 429/503
    cut_after: int | None = None  # send this many body bytes then drop the connection, once
    ranges: bool = True  # honour Range with 206; False answers 200 with the full body
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.body.stat().st_size if isinstance(self.body, Path) else len(self.body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up (cancelled or cut downloads) are normal here; other errors print."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class LocalHTTPServer:
    """Threaded HTTP/1.1 server bound to 127.0.0.1 on a free port; a context manager."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: Counter[str] = Counter()  # GET/HEAD count per path
        self.bytes_by_path: Counter[str] = Counter()  # body bytes sent per path
        self.range_headers: dict[str, list[str | None]] = {}
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None

    # -- configuration -------------------------------------------------------------
    def add(
        self,
        path: str,
        body: bytes | Path,
        *,
        statuses: Sequence[int] = (),
        retry_after: str | None = None,
        cut_after: int | None = None,
        ranges: bool = True,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve *body* at *path*; return its full URL."""
        with self._lock:
            self.routes[path] = Route(body, list(statuses), retry_after, cut_after, ranges, dict(headers or {}))
        return self.url(path)

    def remove(self, path: str) -> None:
        with self._lock:
            self.routes.pop(path, None)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def bytes_sent(self) -> int:
        """Body bytes sent on all paths since start (or the last :meth:`reset_counters`)."""
        with self._lock:
            return sum(self.bytes_by_path.values())

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_by_path.clear()
            self.range_headers.clear()

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> LocalHTTPServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="dockless-httpserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- request handling ------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_HEAD(self) -> None:
                server._serve(self, head=True)

            def do_GET(self) -> None:
                server._serve(self, head=False)

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = urlsplit(h.path).path
        range_header = h.headers.get("Range")
        with self._lock:
            self.requests[path] += 1
            self.range_headers.setdefault(path, []).append(range_header)
            route = self.routes.get(path)
            status = route.statuses.pop(0) if route and route.statuses else None
            cut = None
            if route is not None and status is None and not head and route.cut_after is not None:
                cut, route.cut_after = route.cut_after, None
        if route is None:
            return self._simple(h, 404, "Not Found")
        if status is not None:
            extra = {"Retry-After": route.retry_after} if route.retry_after and status in (429, 503) else {}
            return self._simple(h, status, h.responses.get(status, ("Error",))[0], extra)

        size = route.size
        start, end = 0, size - 1
        code = 200
        m = _RANGE.match(range_header or "")
        if m and route.ranges:
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size or start > end:
                return self._simple(h, 416, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
            code = 206
        length = end - start + 1 if size else 0
        h.send_response(code)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(length))
        h.send_header("Accept-Ranges", "bytes" if route.ranges else "none")
        if code == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for k, v in route.headers.items():
            h.send_header(k, v)
        if cut is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        if head:
            return
        todo = length if cut is None else min(cut, length)
        try:
            self._send_body(h, route.body, path, start, todo)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
            return
        if cut is not None:
            h.close_connection = True
            try:
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _send_body(self, h: BaseHTTPRequestHandler, body: bytes | Path, path: str, start: int, count: int) -> None:
        if isinstance(body, Path):
            with open(body, "rb") as f:
                offset, left = start, count
                while left > 0:
                    sent = h.connection.sendfile(f, offset, min(left, 16 * _CHUNK))
                    if not sent:
                        break
                    offset += sent
                    left -= sent
                    with self._lock:
                        self.bytes_by_path[path] += sent
            return
        view = memoryview(body)
        pos, stop = start, start + count
        while pos < stop:
            n = min(_CHUNK, stop - pos)
            h.wfile.write(view[pos:pos + n])
            pos += n
            with self._lock:
                self.bytes_by_path[path] += n

    @staticmethod
    def _simple(h: BaseHTTPRequestHandler, code: int, reason: str, extra: dict[str, str] | None = None) -> None:
        body = f"{code} {reason}\n".encode()
        h.send_response(code, reason)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
