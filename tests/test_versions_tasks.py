"""versions.check and versions.lock against local fakes (a GitHub API on 127.0.0.1, a mirror)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dockless.download import Cache, DownloadError
from dockless.manager import collect, plugin_manager
from dockless.release_check import GitHub, GitHubError, RateLimited, check
from dockless.settings import load_settings
from dockless.testing.httpserver import LocalHTTPServer
from dockless.testing.mirror import _sha, add_cni_plugins, add_containerd, add_crictl, add_runc, serve, windows_mirror
from dockless.versions import Pins
from dockless.versions_lock import compute, write

REPO = Path(__file__).resolve().parent.parent
COMMIT = "48b403efa770cec7495722c270557480d9d7277a"
PINS = {"containerd": "1.7.20", "runc": "1.3.0", "cni-plugins": "1.6.2", "windows-cni": "0.3.1",
        "crictl": "1.36.0", "hns-module-commit": COMMIT}


# -- a fake GitHub API -----------------------------------------------------------------------------
class FakeGitHub:
    """Serves JSON per path (``/repos/o/r/releases?page=N`` by page); records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], Any]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                fake.seen.append((self.path, dict(self.headers)))
                page = parse_qs(parts.query).get("page", ["1"])[0]
                route = fake.routes.get(f"{parts.path}#{page}") or fake.routes.get(parts.path)
                status, headers, body = route or (404, {}, {"message": "Not Found"})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def json(self, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.routes[path] = (status, headers or {}, body)

    def latest(self, repo: str, tag: str) -> None:
        self.json(f"/repos/{repo}/releases/latest", {"tag_name": tag, "name": tag, "draft": False, "prerelease": False,
                                                     "assets": [{"name": "x.tar.gz", "browser_download_url": f"https://github.com/{repo}/releases/download/{tag}/x.tar.gz"}]})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def release(tag: str, prerelease: bool = False, draft: bool = False) -> dict[str, Any]:
    return {"tag_name": tag, "prerelease": prerelease, "draft": draft, "assets": []}


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    monkeypatch.setenv("DOCKLESS_GITHUB_API", fake.url)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    fake.latest("containerd/containerd", "v2.3.4")
    fake.json("/repos/containerd/containerd/releases", [
        release("v2.3.4"), release("v2.2.8"), release("v1.7.36-rc.1", prerelease=True), release("v1.7.99", draft=True),
        release("v1.7.34"), release("v1.7.33"), release("v2.2.7"),
    ])
    fake.latest("opencontainers/runc", "v1.3.0")
    fake.latest("containernetworking/plugins", "v1.7.1")
    fake.latest("microsoft/windows-container-networking", "v0.3.1")
    fake.latest("kubernetes-sigs/cri-tools", "v1.36.0")
    fake.json("/repos/microsoft/SDN/commits/master", {"sha": "f" * 40, "commit": {"message": "x"}})
    yield fake
    fake.stop()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DOCKLESS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "github_token")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def invoke(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def write_pins(path: Path, pins: dict[str, str], sha: dict[str, str] | None = None) -> Path:
    lines = ["# pinned versions (kept by versions.lock)"]
    lines += [f'{k} = "{v}"  # {k} pin' for k, v in pins.items()]
    lines += ["", "[sha256]", "# asset = hex"]
    lines += [f'"{k}" = "{v}"' for k, v in (sha or {}).items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- versions.check ----------------------------------------------------------------------------------
def test_check_newest_and_pinned_line(github: FakeGitHub) -> None:
    rows = {r.key: r for r in check(Pins(dict(PINS)), GitHub())}
    c = rows["containerd"]
    assert (c.pinned, c.newest) == ("1.7.20", "2.3.4")
    assert c.line.startswith("1.7.34 ")  # the draft and the pre-release are not offered
    assert c.update and "patch 1.7.34" in c.status and "2.3.4" in c.status
    assert not rows["runc"].update and rows["runc"].status == "up to date"
    assert rows["cni-plugins"].update and rows["cni-plugins"].newest == "1.7.1"
    assert not rows["crictl"].update
    assert rows["hns-module-commit"].update and rows["hns-module-commit"].newest == "f" * 12
    assert [r.key for r in rows.values()] == list(PINS)


def test_check_line_on_a_later_page(github: FakeGitHub) -> None:
    github.json("/repos/containerd/containerd/releases#1", [release(f"v2.{i // 10}.{i % 10}") for i in range(100)])
    github.json("/repos/containerd/containerd/releases#2", [release("v1.7.35"), release("v1.7.34")])
    rows = {r.key: r for r in check(Pins({"containerd": "1.7.20"}), GitHub())}
    assert rows["containerd"].line.startswith("1.7.35")
    pages = [p for p, _h in github.seen if p.startswith("/repos/containerd/containerd/releases?")]
    assert len(pages) == 2 and all("per_page=100" in p for p in pages)


def test_check_up_to_date_when_pinned_is_newest(github: FakeGitHub) -> None:
    github.latest("containerd/containerd", "v1.7.34")
    rows = check(Pins({"containerd": "v1.7.34"}), GitHub())
    assert rows[0].status == "up to date" and not rows[0].update


def test_token_header_sent(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    check(Pins({"runc": "1.3.0"}), GitHub())
    assert "Authorization" not in github.seen[-1][1]
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_testtoken")
    check(Pins({"runc": "1.3.0"}), GitHub())
    headers = github.seen[-1][1]
    assert headers["Authorization"] == "Bearer ghp_testtoken"
    assert headers["Accept"] == "application/vnd.github+json"


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_is_one_clear_line(github: FakeGitHub, status: int) -> None:
    reset = int(time.time()) + 600
    github.json("/repos/containerd/containerd/releases/latest",
                {"message": "API rate limit exceeded for 127.0.0.1."}, status,
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset), "X-RateLimit-Limit": "60"})
    with pytest.raises(RateLimited) as err:
        check(Pins(dict(PINS)), GitHub())
    msg = str(err.value)
    assert "\n" not in msg
    assert "rate limit" in msg and "resets at" in msg and "UTC" in msg and "GITHUB_TOKEN" in msg
    assert "in 10 min" in msg or "in 9 min" in msg


def test_rate_limit_with_token_and_secondary_limit(github: FakeGitHub) -> None:
    github.json("/repos/opencontainers/runc/releases/latest",
                {"message": "You have exceeded a secondary rate limit."}, 403, {"Retry-After": "60"})
    with pytest.raises(RateLimited, match=r"for this GITHUB_TOKEN; retry in 60 s$"):
        check(Pins({"runc": "1.3.0"}), GitHub(token="t"))


def test_plain_403_is_not_a_rate_limit(github: FakeGitHub) -> None:
    github.json("/repos/opencontainers/runc/releases/latest", {"message": "Resource not accessible"}, 403)
    with pytest.raises(GitHubError) as err:
        check(Pins({"runc": "1.3.0"}), GitHub())
    assert not isinstance(err.value, RateLimited) and "403" in str(err.value)


def test_unreachable_api_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with pytest.raises(GitHubError, match="cannot reach http://127.0.0.1:9"):
        GitHub("http://127.0.0.1:9").latest_tag("a/b")


def test_check_task_prints_table(github: FakeGitHub, tmp_path: Path) -> None:
    versions = write_pins(tmp_path / "versions.toml", PINS)
    (tmp_path / "dockless.toml").write_text("")
    env = clean_env(DOCKLESS_GITHUB_API=github.url, DOCKLESS_VERSIONS=str(versions),
                    DOCKLESS_CONFIG=str(tmp_path / "dockless.toml"), GITHUB_TOKEN="abc", COLUMNS="200")
    r = invoke(env, "versions.check")
    assert r.returncode == 0, r.stderr
    for text in ("containerd", "1.7.20", "2.3.4", "1.7.34 (1.7.x)", "up to date", "update(s) available"):
        assert text in r.stdout
    assert all(h.get("Authorization") == "Bearer abc" for _p, h in github.seen)


def test_check_task_rate_limited(github: FakeGitHub, tmp_path: Path) -> None:
    versions = write_pins(tmp_path / "versions.toml", PINS)
    (tmp_path / "dockless.toml").write_text("")
    github.json("/repos/containerd/containerd/releases/latest", {"message": "API rate limit exceeded"}, 403,
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 300)})
    env = clean_env(DOCKLESS_GITHUB_API=github.url, DOCKLESS_VERSIONS=str(versions),
                    DOCKLESS_CONFIG=str(tmp_path / "dockless.toml"))
    r = invoke(env, "versions.check")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "rate limit exceeded" in lines[0] and "set GITHUB_TOKEN" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


# -- versions.lock ------------------------------------------------------------------------------------
@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], LocalHTTPServer]]:
    """Both targets' release assets (stand-ins) served on 127.0.0.1; returns the expected lock."""
    root = tmp_path / "mirror"
    expected: dict[str, str] = {}

    def note(rel: str) -> None:
        expected[rel.rsplit("/", 1)[-1]] = _sha((root / rel).read_bytes())

    note(add_containerd(root, PINS["containerd"], "linux", {"containerd": b"c", "ctr": b"t", "containerd-shim-runc-v2": b"s"}))
    note(add_runc(root, PINS["runc"], b"runc stand-in"))
    note(add_cni_plugins(root, PINS["cni-plugins"], {"bridge": b"b", "host-local": b"h", "loopback": b"l", "portmap": b"p"}))
    note(add_crictl(root, PINS["crictl"], "linux", b"crictl stand-in"))
    hns = windows_mirror(root, PINS)
    for rel in root.rglob("*"):
        if rel.is_file() and "windows" in rel.name and not rel.name.endswith((".sha256", ".sha256sum")):
            note(rel.relative_to(root).as_posix())
    expected.update(hns)
    with LocalHTTPServer() as server:
        yield serve(server, root), expected, server


def registry_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, versions: Path, mirror_url: str) -> tuple[Any, Any]:
    monkeypatch.setenv("DOCKLESS_VERSIONS", str(versions))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    (tmp_path / "dockless.toml").write_text("")
    settings = load_settings({"DOCKLESS_MIRROR": mirror_url, "DOCKLESS_CONFIG": str(tmp_path / "dockless.toml")})
    return settings, collect(plugin_manager(entry_points=False))


def test_lock_fills_every_artifact_of_both_targets(mirror: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, expected, server = mirror
    versions = write_pins(tmp_path / "versions.toml", PINS)
    settings, registry = registry_for(monkeypatch, tmp_path, versions, url)
    locks = compute(settings, registry, Cache(tmp_path / "cache"))
    assert {lk.name: lk.sha256 for lk in locks} == expected
    # published checksums are read, not the assets: only hns.psm1 (nothing published) is downloaded
    downloaded = {p for p, n in server.bytes_by_path.items() if n and not p.endswith((".sha256", ".sha256sum"))}
    assert downloaded == {f"/microsoft/SDN/raw/{COMMIT}/Kubernetes/windows/hns.psm1"}


def test_lock_keeps_comments_and_is_idempotent(mirror: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, expected, _server = mirror
    versions = write_pins(tmp_path / "versions.toml", PINS)
    before = versions.read_text()
    settings, registry = registry_for(monkeypatch, tmp_path, versions, url)
    locks = compute(settings, registry, Cache(tmp_path / "cache"))

    dry = write(versions, locks, dry=True)
    assert len(dry.added) == len(expected) and not dry.written
    assert versions.read_text() == before

    out = write(versions, locks)
    assert out.written and len(out.added) == len(expected)
    after = versions.read_text()
    assert after.startswith(before.rstrip("\n"))  # comments, pins and layout unchanged, entries appended
    assert "# pinned versions (kept by versions.lock)" in after and "# containerd pin" in after and "# asset = hex" in after
    import tomllib

    assert tomllib.loads(after)["sha256"] == expected
    mtime = versions.stat().st_mtime_ns
    again = write(versions, compute(settings, registry, Cache(tmp_path / "cache")))
    assert not (again.added or again.changed or again.written)
    assert versions.read_text() == after and versions.stat().st_mtime_ns == mtime


def test_lock_keeps_a_differing_pin_unless_forced(mirror: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, expected, _server = mirror
    name = "runc.amd64"
    versions = write_pins(tmp_path / "versions.toml", PINS, {name: "0" * 64})
    settings, registry = registry_for(monkeypatch, tmp_path, versions, url)
    locks = compute(settings, registry, Cache(tmp_path / "cache"))
    out = write(versions, locks)
    assert [(lk.name, old) for lk, old in out.kept] == [(name, "0" * 64)]
    assert f'"{name}" = "{"0" * 64}"' in versions.read_text()
    out = write(versions, locks, force=True)
    assert [lk.name for lk, _old in out.changed] == [name]
    assert f'"{name}" = "{expected[name]}"' in versions.read_text()
    assert versions.read_text().count(name) == 1


def test_lock_missing_checksum_is_one_line(mirror: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _expected, server = mirror
    server.remove("/opencontainers/runc/releases/download/v1.3.0/runc.sha256sum")
    versions = write_pins(tmp_path / "versions.toml", PINS)
    settings, registry = registry_for(monkeypatch, tmp_path, versions, url)
    with pytest.raises(DownloadError, match=r"^runc 1\.3\.0: .*runc\.sha256sum returned 404 Not Found; check \[versions\] runc"):
        compute(settings, registry, Cache(tmp_path / "cache"))


def test_lock_task_dry_then_write(mirror: Any, tmp_path: Path) -> None:
    url, expected, _server = mirror
    versions = write_pins(tmp_path / "versions.toml", PINS)
    before = versions.read_text()
    (tmp_path / "dockless.toml").write_text("")
    env = clean_env(DOCKLESS_MIRROR=url, DOCKLESS_VERSIONS=str(versions), DOCKLESS_CONFIG=str(tmp_path / "dockless.toml"),
                    DOCKLESS_CACHE=str(tmp_path / "cache"))
    r = invoke(env, "versions.lock", "--dry")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("would write") == len(expected) and versions.read_text() == before
    r = invoke(env, "versions.lock")
    assert r.returncode == 0, r.stderr
    assert f"{len(expected)} sha256 written" in r.stdout
    r = invoke(env, "versions.lock")
    assert r.returncode == 0 and "every pinned artifact is locked" in r.stdout, r.stderr
