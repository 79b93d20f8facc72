"""How :func:`~dockless.download.fetch_all` reports its downloads on stderr: a rich progress bar
per artifact on a terminal (:class:`RichReporter`), else one plain line per artifact
(:class:`PlainReporter`)."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING

from dockless.urls import url_basename

if TYPE_CHECKING:
    from dockless.download import Artifact, _Outcome

ProgressFn = Callable[[str, int, "int | None"], None]
"""``progress(artifact_key, bytes_done, bytes_total_or_None)``."""


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


class PlainReporter:
    """One line per artifact on *stream* (stderr is not a terminal)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def callback(self, key: str) -> ProgressFn | None:
        return None

    def done(self, a: Artifact, o: _Outcome, seconds: float) -> None:
        how = "cached" if o.cached else f"downloaded in {seconds:.1f}s"
        self._line(f"dockless: {a.label}: {url_basename(o.url)} ({human_size(o.size)}, {how})")

    def failed(self, a: Artifact, cancelled: bool) -> None:
        """Nothing here: :func:`~dockless.download.fetch_all` raises the first error (the caller
        reports it, once) and prints the others itself; printing here too made one failure two lines."""

    def _line(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichReporter:
    """A rich progress bar per artifact on stderr."""

    def __init__(self, artifacts: Sequence[Artifact]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.tasks = {a.key: self.progress.add_task(a.label, total=None) for a in artifacts}
        self.progress.start()

    def callback(self, key: str) -> ProgressFn:
        task = self.tasks[key]

        def update(_key: str, done: int, total: int | None) -> None:
            self.progress.update(task, completed=done, total=total)

        return update

    def done(self, a: Artifact, o: _Outcome, seconds: float) -> None:
        suffix = " (cached)" if o.cached else ""
        self.progress.update(self.tasks[a.key], description=f"{a.label}{suffix}", completed=o.size, total=o.size)

    def failed(self, a: Artifact, cancelled: bool) -> None:
        word = "cancelled" if cancelled else "failed"
        self.progress.update(self.tasks[a.key], description=f"{a.label} ({word})")

    def close(self) -> None:
        self.progress.stop()
