"""Download benchmark: dockless vs curl on a local server, then fetch_all parallelism.

    python bench/download.py [--size-mb 200] [--runs 2]

1. Serves one file (generated at start into a temp file and streamed with sendfile)
   on 127.0.0.1, downloads it with dockless (fresh cache each run, checksum verified,
   fsync'ed into the cache) and with ``curl -s -o`` and prints both throughputs and
   their ratio (best of --runs).
2. Serves 4 artifacts (80, 40, 20, 10 MB by default) and prints the time of
   ``fetch_all`` for all four against the time of the largest alone, and the ratio.

Nothing leaves the machine; no assertion is made on the figures.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockless.download import Artifact, Cache, FetchStats, fetch, fetch_all  # noqa: E402
from dockless.testing.httpserver import LocalHTTPServer  # noqa: E402

MB = 1_000_000


def make_file(path: Path, size: int) -> str:
    """Write *size* random bytes to *path*; return their sha256."""
    h = hashlib.sha256()
    block = 4 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(block, left))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def publish(srv: LocalHTTPServer, work: Path, name: str, size: int) -> Artifact:
    path = work / name
    digest = make_file(path, size)
    url = srv.add(f"/releases/{name}", path)
    cs = srv.add(f"/releases/{name}.sha256sum", f"{digest}  {name}\n".encode())
    return Artifact(name.split("-")[0], "1.0.0", (url,), (cs,))


def timed_fetch(a: Artifact, cache_dir: Path) -> float:
    shutil.rmtree(cache_dir, ignore_errors=True)
    start = time.perf_counter()
    fetch(a, Cache(cache_dir))
    return time.perf_counter() - start


def timed_curl(curl: str, url: str, out: Path) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run([curl, "-s", "--noproxy", "*", "-o", str(out), url], check=True)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--parallel-mb", default="80,40,20,10")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="dockless-bench-") as tmp, LocalHTTPServer() as srv:
        work = Path(tmp)
        size = args.size_mb * MB
        print(f"generating {args.size_mb} MB test file ...", flush=True)
        big = publish(srv, work, "big-1.0.0.bin", size)

        # 1. single large file: dockless vs curl
        stats = FetchStats()
        dl_times = []
        for _ in range(args.runs):
            shutil.rmtree(work / "cache", ignore_errors=True)
            start = time.perf_counter()
            fetch(big, Cache(work / "cache"), stats=stats)
            dl_times.append(time.perf_counter() - start)
        dl = size / MB / min(dl_times)
        print(f"dockless fetch : {dl:8.1f} MB/s  (best of {args.runs}: {min(dl_times):.2f}s, sha256 + fsync included)")
        curl = shutil.which("curl")
        if curl is None:
            print("curl           : skipped (curl not found on PATH)")
        else:
            curl_times = [timed_curl(curl, big.urls[0], work / "curl.out") for _ in range(args.runs)]
            cu = size / MB / min(curl_times)
            print(f"curl -s -o     : {cu:8.1f} MB/s  (best of {args.runs}: {min(curl_times):.2f}s)")
            print(f"ratio dockless/curl: {dl / cu:.2f}")

        # 2. fetch_all parallelism
        sizes = [int(x) for x in args.parallel_mb.split(",")]
        arts = [publish(srv, work, f"part{i}-1.0.0.bin", mb * MB) for i, mb in enumerate(sizes)]
        largest = arts[sizes.index(max(sizes))]
        alone = min(timed_fetch(largest, work / "cache-alone") for _ in range(args.runs))
        all_times = []
        for _ in range(args.runs):
            shutil.rmtree(work / "cache-all", ignore_errors=True)
            start = time.perf_counter()
            fetch_all(arts, Cache(work / "cache-all"), max_workers=4, progress=False)
            all_times.append(time.perf_counter() - start)
        together = min(all_times)
        total_mb = sum(sizes)
        print(
            f"fetch_all {'+'.join(map(str, sizes))} MB ({total_mb} MB): {together:.2f}s; "
            f"largest ({max(sizes)} MB) alone: {alone:.2f}s; ratio {together / alone:.2f} "
            f"(sequential would be ~{total_mb / max(sizes):.2f})"
        )
        srv.reset_counters()
        fetch_all(arts, Cache(work / "cache-all"), progress=False)
        print(f"second fetch_all (all cached): {srv.total_requests} requests, {srv.bytes_sent} bytes on the wire")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
