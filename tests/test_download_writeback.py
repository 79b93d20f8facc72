"""Downloads into an fsync'ing cache start the writeback as they stream (dockless.writeback):
the bytes, the digest and a resumed download are unchanged by it."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from dockless.download import Artifact, Cache, RetryPolicy, fetch
from dockless.testing.httpserver import LocalHTTPServer
from dockless.writeback import STEP


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.mark.parametrize("cut_after", [None, STEP + 12345])
def test_fetch_into_fsyncing_cache(tmp_path: Path, cut_after: int | None) -> None:
    data = os.urandom(2 * STEP + 999)
    digest = hashlib.sha256(data).hexdigest()
    with LocalHTTPServer() as srv:
        url = srv.add("/a.bin", data, cut_after=cut_after)
        artifact = Artifact("a", "1.0.0", (url,), (None,), sha256=digest)
        blob = fetch(artifact, Cache(tmp_path / "cache"), retry=RetryPolicy(sleep=lambda s: None))
        assert blob.read_bytes() == data and blob.name == digest
        if cut_after is not None:  # resumed with Range from where the cut left the .part file
            assert srv.range_headers["/a.bin"] == [None, f"bytes={cut_after}-"]


def test_local_mirror_copy_into_fsyncing_cache(tmp_path: Path) -> None:
    data = os.urandom(STEP + 7)
    src = tmp_path / "mirror" / "a.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    artifact = Artifact("a", "1.0.0", (str(src),), (None,), sha256=hashlib.sha256(data).hexdigest())
    assert fetch(artifact, Cache(tmp_path / "cache")).read_bytes() == data
