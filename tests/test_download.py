"""Downloads against a real threaded HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockless.download import (
    Artifact,
    Cache,
    DownloadError,
    FetchStats,
    RetryPolicy,
    Unreachable,
    fetch,
    fetch_all,
)
from dockless.testing.httpserver import LocalHTTPServer


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-ish bytes."""
    out = bytearray()
    block = hashlib.sha256(f"seed{seed}".encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 32
    return bytes(out[:n])


def files_under(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("DOCKLESS_CACHE", str(tmp_path / "env-cache"))


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache", fsync=False)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retry(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(attempts=4, sleep=sleeps.append)


def publish(srv: LocalHTTPServer, path: str, data: bytes, checksum: str | None = None, **route: object) -> Artifact:
    """Serve *data* at *path* with a ``<hex>  <name>`` checksum file next to it."""
    name = path.rsplit("/", 1)[-1]
    url = srv.add(path, data, **route)  # type: ignore[arg-type]
    cs = srv.add(path + ".sha256sum", (checksum or f"{sha(data)}  {name}\n").encode())
    return Artifact(name.split("-")[0], "1.0.0", (url,), (cs,))


# ----------------------------------------------------------------------------- basics
def test_fetch_verifies_and_caches_by_sha(server: LocalHTTPServer, cache: Cache) -> None:
    data = blob(300_000)
    a = publish(server, "/v1.0.0/containerd-1.0.0-linux-amd64.tar.gz", data)
    p = fetch(a, cache)
    assert p == cache.root / "sha256" / sha(data)
    assert p.read_bytes() == data
    assert a.filename == "containerd-1.0.0-linux-amd64.tar.gz"
    assert files_under(cache.root / "partial") == []


def test_parallel_fetch_all_then_cache_hit_with_zero_bytes(server: LocalHTTPServer, cache: Cache) -> None:
    datas = {f"art{i}": blob(200_000 * (i + 1), seed=i) for i in range(5)}
    arts = [publish(server, f"/r/{k}-1.0.0.tgz", d) for k, d in datas.items()]
    stats = FetchStats()
    got = fetch_all(arts, cache, max_workers=4, progress=False, stats=stats)
    assert set(got) == set(datas)
    for k, d in datas.items():
        assert got[k].read_bytes() == d
    assert stats.downloads == 5
    assert server.bytes_by_path["/r/art4-1.0.0.tgz"] == len(datas["art4"])

    server.reset_counters()
    stats2 = FetchStats()
    again = fetch_all(arts, cache, progress=False, stats=stats2)
    assert again == got
    assert server.bytes_sent == 0 and server.total_requests == 0  # counted by the server
    assert stats2.cache_hits == 5 and stats2.requests == 0 and stats2.bytes_downloaded == 0


def test_fetch_all_plain_progress_one_line_per_artifact(
    server: LocalHTTPServer, cache: Cache, capsys: pytest.CaptureFixture[str]
) -> None:
    arts = [publish(server, f"/p/t{i}-1.tgz", blob(1000, i)) for i in range(3)]
    fetch_all(arts, cache, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("downloaded" in line for line in err)
    fetch_all(arts, cache, progress=False)
    assert all("cached" in line for line in capsys.readouterr().err.strip().splitlines())


def test_fetch_all_rich_progress_does_not_break(server: LocalHTTPServer, cache: Cache) -> None:
    arts = [publish(server, f"/rp/t{i}-1.tgz", blob(5000, i)) for i in range(2)]
    assert set(fetch_all(arts, cache, progress=True)) == {a.key for a in arts}


def test_fetch_all_raises_first_error_after_others(server: LocalHTTPServer, cache: Cache, retry: RetryPolicy) -> None:
    good = [publish(server, f"/e/ok{i}-1.tgz", blob(100_000, i)) for i in range(3)]
    bad = Artifact("containerd", "1.7.99", (server.url("/nope/containerd-1.7.99.tgz"),), sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"^containerd 1\.7\.99: .*404"):
        fetch_all([*good, bad], cache, progress=False, retry=retry)
    assert threading.active_count() < 20  # workers are gone, nothing hangs
    for name in files_under(cache.root / "sha256"):  # finished ones are complete and verified
        assert sha((cache.root / "sha256" / name).read_bytes()) == name


def test_duplicate_keys_rejected(cache: Cache) -> None:
    a = Artifact("x", "1", ("/nowhere/x",), sha256="0" * 64)
    with pytest.raises(ValueError, match="duplicate"):
        fetch_all([a, a], cache, progress=False)


# ----------------------------------------------------------------------------- resilience
def test_resume_after_cut_uses_range(server: LocalHTTPServer, cache: Cache, sleeps: list[float], retry: RetryPolicy) -> None:
    data = blob(3_000_000)
    a = publish(server, "/c/cut-1.tgz", data, cut_after=1_234_567)
    p = fetch(a, cache, retry=retry)
    assert p.read_bytes() == data
    ranges = server.range_headers["/c/cut-1.tgz"]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    offset = int(ranges[1][len("bytes="):-1])
    assert 0 < offset <= 1_234_567
    assert server.bytes_by_path["/c/cut-1.tgz"] == len(data) + (1_234_567 - offset)  # no full re-download
    assert len(sleeps) == 1


def test_restart_cleanly_when_server_ignores_range(server: LocalHTTPServer, cache: Cache, retry: RetryPolicy) -> None:
    data = blob(2_000_000)
    a = publish(server, "/c/norange-1.tgz", data, cut_after=700_000, ranges=False)
    assert fetch(a, cache, retry=retry).read_bytes() == data
    assert server.requests["/c/norange-1.tgz"] == 2


def test_resume_a_part_left_by_an_earlier_run(server: LocalHTTPServer, cache: Cache) -> None:
    data = blob(1_000_000)
    a = publish(server, "/c/prev-1.tgz", data)
    part = cache.part_path(a.urls[0])
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:400_000])
    assert fetch(a, cache).read_bytes() == data
    assert server.range_headers["/c/prev-1.tgz"] == ["bytes=400000-"]
    assert server.bytes_by_path["/c/prev-1.tgz"] == 600_000


def test_stale_part_with_wrong_bytes_restarts_once(server: LocalHTTPServer, cache: Cache) -> None:
    data = blob(1_000_000)
    a = publish(server, "/c/stale-1.tgz", data)
    part = cache.part_path(a.urls[0])
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 400_000)  # not a prefix of the asset
    assert fetch(a, cache).read_bytes() == data
    assert server.range_headers["/c/stale-1.tgz"] == ["bytes=400000-", None]


def test_retry_after_503_with_backoff(server: LocalHTTPServer, cache: Cache, sleeps: list[float], retry: RetryPolicy) -> None:
    data = blob(50_000)
    a = publish(server, "/r/busy-1.tgz", data, statuses=[503, 503])
    assert fetch(a, cache, retry=retry).read_bytes() == data
    assert sleeps == [0.5, 1.0]


def test_retry_after_429_honours_retry_after(
    server: LocalHTTPServer, cache: Cache, sleeps: list[float], retry: RetryPolicy
) -> None:
    data = blob(50_000)
    a = publish(server, "/r/limited-1.tgz", data, statuses=[429], retry_after="3")
    assert fetch(a, cache, retry=retry).read_bytes() == data
    assert sleeps == [3.0]


def test_retries_are_bounded(server: LocalHTTPServer, cache: Cache, sleeps: list[float], retry: RetryPolicy) -> None:
    a = publish(server, "/r/down-1.tgz", b"x", statuses=[503] * 10)
    with pytest.raises(DownloadError, match=r"failed after 4 attempts: 503"):
        fetch(a, cache, retry=retry)
    assert len(sleeps) == 3
    assert files_under(cache.root / "sha256") == []


def test_connection_refused_is_retried_then_reported(cache: Cache, sleeps: list[float], retry: RetryPolicy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    a = Artifact("crictl", "1.36.0", (f"http://127.0.0.1:{port}/crictl.tgz",), sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"^crictl 1\.36\.0: http://127\.0\.0\.1:\d+/crictl\.tgz failed after 4"):
        fetch(a, cache, retry=retry)
    assert len(sleeps) == 3


def test_unreachable_host_is_one_line_naming_it_and_the_way_out(cache: Cache, retry: RetryPolicy,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Offline (nothing listens, or the name does not resolve): one line for every artifact, the
    host and the cause in a few words (not urllib3's repr cut mid-cause), DOCKLESS_MIRROR and
    HTTPS_PROXY as the ways out; the other workers' identical errors are not printed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    arts = [Artifact(k, "1.0.0", (f"http://127.0.0.1:{port}/{k}.tgz",), (f"http://127.0.0.1:{port}/{k}.tgz.sha256",))
            for k in ("containerd", "runc", "cni-plugins")]
    with pytest.raises(Unreachable) as ei:
        fetch_all(arts, cache, progress=False, retry=retry)
    message = str(ei.value)
    assert "\n" not in message and capsys.readouterr().err == ""
    assert re.fullmatch(r"(containerd|runc|cni-plugins) 1\.0\.0((, | and ).*)?: cannot reach 127\.0\.0\.1:%d "
                        r"\(connection refused, 4 attempts\); check the network, or set DOCKLESS_MIRROR to a reachable "
                        r"mirror \(or a folder written by `invoke bundle`\), or HTTPS_PROXY if this network needs a proxy"
                        % port, message), message
    from dockless.download import _connection_reason  # what requests says when DNS fails (no lookup here)

    dns = ("HTTPSConnectionPool(host='github.com', port=443): Max retries exceeded with url: /kubernetes-sigs/cri-tools"
           "/releases/download/v1.36.0/crictl.tgz (Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection "
           "object at 0x7f>: Failed to resolve 'github.com' ([Errno -3] Temporary failure in name resolution)\"))")
    assert _connection_reason(Exception(dns)) == "its name does not resolve"


# ----------------------------------------------------------------------------- errors
def test_404_message_names_url_key_and_version(server: LocalHTTPServer, cache: Cache) -> None:
    url = server.url("/v1.7.99/containerd-1.7.99-linux-amd64.tar.gz")
    a = Artifact("containerd", "1.7.99", (url,), (url + ".sha256sum",))
    with pytest.raises(DownloadError) as ei:
        fetch(a, cache)
    assert str(ei.value) == (
        f"containerd 1.7.99: {url}.sha256sum returned 404 Not Found; check [versions] containerd in versions.toml"
    )
    pinned = Artifact("containerd", "1.7.99", (url,), sha256="a" * 64)
    with pytest.raises(DownloadError, match=rf"^containerd 1\.7\.99: {url} returned 404 Not Found; check"):
        fetch(pinned, cache)


def test_mismatch_leaves_nothing_in_cache(server: LocalHTTPServer, cache: Cache) -> None:
    data = blob(500_000)
    wrong = "b" * 64
    a = publish(server, "/m/bad-1.tgz", data, checksum=f"{wrong}  bad-1.tgz\n")
    with pytest.raises(DownloadError) as ei:
        fetch(a, cache)
    msg = str(ei.value)
    assert msg.startswith("bad 1.0.0: sha256 mismatch") and wrong in msg and sha(data) in msg
    assert files_under(cache.root) == []


def test_missing_checksum_refused_unless_allowed(server: LocalHTTPServer, cache: Cache) -> None:
    data = blob(10_000)
    url = server.add("/u/tool", data)
    with pytest.raises(DownloadError, match="no published checksum"):
        fetch(Artifact("tool", "1", (url,)), cache)
    assert server.total_requests == 0
    a = Artifact("tool", "1", (url,), allow_unverified=True)
    assert fetch(a, cache).read_bytes() == data
    server.reset_counters()
    assert fetch(a, cache).read_bytes() == data  # recorded by URL: no request the second time
    assert server.total_requests == 0


def test_checksum_file_without_the_asset(server: LocalHTTPServer, cache: Cache) -> None:
    a = publish(server, "/x/runc.amd64", b"runc", checksum=f"{'c' * 64}  runc.arm64\n")
    with pytest.raises(DownloadError, match=r"runc\.amd64.*sha256sum.*no sha256 for runc\.amd64"):
        fetch(a, cache)


def test_tls_error_has_its_own_line(server: LocalHTTPServer, cache: Cache, retry: RetryPolicy) -> None:
    url = f"https://127.0.0.1:{server.port}/x.tgz"  # a plain-HTTP server answering a TLS hello
    a = Artifact("crictl", "1.36.0", (url,), sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"^crictl 1\.36\.0: TLS verification failed for https://127") as ei:
        fetch(a, cache, retry=retry)
    assert "\n" not in str(ei.value)


def test_proxy_error_has_its_own_line(monkeypatch: pytest.MonkeyPatch, cache: Cache, retry: RetryPolicy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")  # nothing listens: never leaves the host
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    a = Artifact("containerd", "2.2.7", ("https://example.invalid/containerd.tgz",), sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"^containerd 2\.2\.7: proxy error .* via HTTPS_PROXY=http://127"):
        fetch(a, cache, retry=retry)


def test_unsupported_scheme(cache: Cache) -> None:
    with pytest.raises(DownloadError, match=r"^x 1: unsupported URL scheme 'ftp'"):
        fetch(Artifact("x", "1", ("ftp://h/x",), sha256="0" * 64), cache)


# ----------------------------------------------------------------------------- checksum formats end to end
def test_every_checksum_format(server: LocalHTTPServer, cache: Cache) -> None:
    d = {i: blob(20_000 + i, seed=i) for i in range(6)}
    c_name = "containerd-1.7.20-windows-amd64.tar.gz"
    w_name = "windows-container-networking-cni-amd64-v0.3.1.zip"
    k_name = "crictl-v1.36.0-windows-amd64.tar.gz"
    n_name = "cni-plugins-linux-amd64-v1.5.1.tgz"
    formats = {
        "containerd": (c_name, d[0], f"{sha(d[0])}  {c_name}\n", ".sha256sum"),
        "cni-nat": (w_name, d[1], f"{sha(d[1])}  ./release/{w_name}\n", ".sha256"),
        "crictl": (k_name, d[2], f"{sha(d[2])}\n", ".sha256"),
        "cni-plugins": (n_name, d[3], f"{sha(d[3])}\n", ".sha256"),
        "star": ("star.tgz", d[4], f"{sha(d[4])} *star.tgz\n", ".sha256"),
    }
    arts = []
    for key, (name, data, text, ext) in formats.items():
        url = server.add(f"/{key}/{name}", data)
        cs = server.add(f"/{key}/{name}{ext}", text.encode())
        arts.append(Artifact(key, "1", (url,), (cs,)))
    # runc: one checksum file for several raw assets
    runc_sum = f"{sha(d[5])}  runc.amd64\n{sha(b'arm')}  runc.arm64\n{'e' * 64}  libseccomp-2.5.5.tar.gz\n"
    cs = server.add("/runc/runc.sha256sum", runc_sum.encode())
    arts.append(Artifact("runc", "1.2.0", (server.add("/runc/runc.amd64", d[5]),), (cs,)))
    arts.append(Artifact("runc-arm", "1.2.0", (server.add("/runc/runc.arm64", b"arm"),), (cs,)))
    got = fetch_all(arts, cache, progress=False)
    for key, (_, data, _, _) in formats.items():
        assert got[key].read_bytes() == data
    assert got["runc"].read_bytes() == d[5] and got["runc-arm"].read_bytes() == b"arm"


def test_pinned_sha_wins_and_skips_checksum_file(server: LocalHTTPServer, cache: Cache) -> None:
    data = blob(10_000)
    a = publish(server, "/pin/pinned-1.tgz", data, checksum=f"{'d' * 64}  pinned-1.tgz\n")
    pinned = Artifact(a.key, a.version, a.urls, a.checksum_urls, sha256=sha(data).upper())
    assert fetch(pinned, cache).read_bytes() == data
    assert server.requests["/pin/pinned-1.tgz.sha256sum"] == 0


def test_renamed_asset_fallback(server: LocalHTTPServer, cache: Cache) -> None:
    data = blob(40_000)
    old = "windows-container-networking-cni-amd64-v0.3.1.zip"
    new = "windows-container-networking-cni-amd64-0.3.1.zip"
    url_new = server.add(f"/v0.3.1/{new}", data)
    cs_new = server.add(f"/v0.3.1/{new}.sha256", f"{sha(data)}  ./release/{new}\n".encode())
    a = Artifact(
        "cni-nat",
        "0.3.1",
        (server.url(f"/v0.3.1/{old}"), url_new),
        (server.url(f"/v0.3.1/{old}.sha256"), cs_new),
    )
    assert fetch(a, cache).read_bytes() == data
    assert a.filename == old
    # pinned: the asset itself 404s first, then the second candidate is used
    server.reset_counters()
    pinned = Artifact("cni-nat", "0.3.1", (server.url(f"/v0.3.1/x-{old}"), url_new), sha256=sha(data))
    assert fetch(pinned, Cache(cache.root.parent / "other", fsync=False)).read_bytes() == data
    assert server.requests[f"/v0.3.1/x-{old}"] == 1


def test_all_candidates_missing_lists_them(server: LocalHTTPServer, cache: Cache) -> None:
    a = Artifact("cni-nat", "0.3.1", (server.url("/a.zip"), server.url("/b.zip")), sha256="1" * 64)
    with pytest.raises(DownloadError, match=r"/a\.zip returned 404 Not Found \(also tried .*/b\.zip returned 404"):
        fetch(a, cache)


# ----------------------------------------------------------------------------- local mirrors
def _bundle(tmp_path: Path) -> tuple[Path, bytes, str]:
    bundle = tmp_path / "offline bundle"
    bundle.mkdir()
    data = blob(70_000)
    name = "crictl-v1.36.0-linux-amd64.tar.gz"
    (bundle / name).write_bytes(data)
    (bundle / f"{name}.sha256").write_text(sha(data))
    return bundle, data, name


def test_file_url_mirror(tmp_path: Path, cache: Cache) -> None:
    bundle, data, name = _bundle(tmp_path)
    url = (bundle / name).as_uri()
    assert url.startswith("file://") and "%20" in url
    a = Artifact("crictl", "1.36.0", (url,), (url + ".sha256",))
    stats = FetchStats()
    assert fetch(a, cache, stats=stats).read_bytes() == data
    assert stats.bytes_copied == len(data) and stats.requests == 0


def test_plain_path_mirror_and_fallback(tmp_path: Path, cache: Cache) -> None:
    bundle, data, name = _bundle(tmp_path)
    a = Artifact(
        "crictl",
        "1.36.0",
        (str(bundle / "missing.tgz"), str(bundle / name)),
        (str(bundle / "missing.tgz.sha256"), str(bundle / f"{name}.sha256")),
    )
    assert fetch(a, cache).read_bytes() == data
    with pytest.raises(DownloadError, match=r"missing\.tgz does not exist"):
        fetch(Artifact("crictl", "1.36.0", (str(bundle / "missing.tgz"),), sha256="0" * 64), cache)


# ----------------------------------------------------------------------------- cache
def test_cache_root_from_env(tmp_path: Path) -> None:
    assert Cache().root == tmp_path / "env-cache"


def test_cache_default_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKLESS_CACHE")
    root = Cache().root
    assert root.name == "blobs" and "dockless" in str(root)


def test_artifact_validation() -> None:
    with pytest.raises(ValueError):
        Artifact("x", "1", ())
    with pytest.raises(ValueError):
        Artifact("x", "1", ("a", "b"), ("a.sha",))
    with pytest.raises(ValueError):
        Artifact("x", "1", ("a",), sha256="latest")
    assert Artifact("x", "1", "http://h/p/x.tgz?x=1").filename == "x.tgz"  # type: ignore[arg-type]
    assert Artifact("x", "1", (r"C:\bundle\x.zip",)).filename == "x.zip"


def test_no_tmp_files_left_anywhere(server: LocalHTTPServer, cache: Cache) -> None:
    arts = [publish(server, f"/t/n{i}-1.tgz", blob(30_000, i)) for i in range(3)]
    fetch_all(arts, cache, progress=False)
    leftovers = [f for f in files_under(cache.root) if f.endswith((".part", ".tmp"))]
    assert leftovers == []
    assert os.listdir(cache.root / "sha256") and len(os.listdir(cache.root / "sha256")) == 3
