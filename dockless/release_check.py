"""``versions.check``: pinned versions against the newest GitHub releases.

Uses the GitHub REST API (``GET /repos/{owner}/{repo}/releases/latest`` → ``tag_name``; the
release list for the newest patch of the pinned minor line; ``GET /repos/{owner}/{repo}/commits/{ref}``
for a commit pin). ``DOCKLESS_GITHUB_API`` overrides the base URL (GitHub Enterprise, tests);
``GITHUB_TOKEN`` is sent as ``Authorization: Bearer``. A rate-limit answer (403/429 with
``X-RateLimit-Remaining: 0``, or a secondary limit with ``Retry-After``) becomes one line
saying when it resets. TLS verification is never disabled.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests

from dockless.download import USER_AGENT
from dockless.versions import Pins, Version, VersionError

API = "https://api.github.com"
API_VERSION = "2022-11-28"
TIMEOUT = (15.0, 60.0)

REPOS = {
    "containerd": "containerd/containerd",
    "runc": "opencontainers/runc",
    "cni-plugins": "containernetworking/plugins",
    "windows-cni": "microsoft/windows-container-networking",
    "crictl": "kubernetes-sigs/cri-tools",
}
"""Pin key → GitHub repository whose releases it follows."""
LINES = {"containerd"}
"""Components with maintained minor lines: also report the newest patch of the pinned line."""
COMMITS = {"hns-module-commit": ("microsoft/SDN", "master")}
"""Commit pins → (repository, branch) whose head they are compared with."""
MAX_PAGES = 5


class GitHubError(Exception):
    """The API could not answer; one line naming the URL and what to do."""


class RateLimited(GitHubError):
    """GitHub's rate limit was hit; the message says when it resets."""


def _one_line(text: object, limit: int = 200) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


class GitHub:
    """A minimal GitHub REST client (JSON GETs)."""

    def __init__(self, base: str | None = None, token: str | None = None, *,
                 environ: Mapping[str, str] | None = None, session: requests.Session | None = None) -> None:
        env = os.environ if environ is None else environ
        self.base = (base or env.get("DOCKLESS_GITHUB_API") or API).rstrip("/")
        self.token = token if token is not None else (env.get("GITHUB_TOKEN") or "").strip() or None
        self.session = session or requests.Session()

    def get(self, path: str, **params: Any) -> Any:
        url = self.base + path
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "User-Agent": USER_AGENT}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.session.get(url, params=params or None, headers=headers, timeout=TIMEOUT)
        except requests.exceptions.SSLError as e:
            raise GitHubError(f"TLS verification failed for {url}: {_one_line(e, 120)}; behind an "
                              "intercepting proxy set REQUESTS_CA_BUNDLE to its CA bundle") from None
        except requests.exceptions.ProxyError as e:
            raise GitHubError(f"proxy error for {url}: {_one_line(e, 120)}; check HTTPS_PROXY and NO_PROXY") from None
        except (requests.ConnectionError, requests.Timeout) as e:
            raise GitHubError(f"cannot reach {self.base}: {_one_line(e, 120)}; check the network "
                              "(HTTPS_PROXY/NO_PROXY) or set DOCKLESS_GITHUB_API") from None
        with resp:
            message = self._message(resp)
            if resp.status_code in (403, 429) and self._limited(resp, message):
                raise RateLimited(self._rate_message(resp))
            if resp.status_code == 401:
                raise GitHubError(f"GitHub refused GITHUB_TOKEN (401 {message or 'Bad credentials'}): "
                                  "set a valid token or unset GITHUB_TOKEN")
            if resp.status_code != 200:
                raise GitHubError(f"{url} returned {resp.status_code} {resp.reason or ''}".rstrip()
                                  + (f": {message}" if message else ""))
            try:
                return resp.json()
            except ValueError:
                raise GitHubError(f"{url} did not answer JSON") from None

    @staticmethod
    def _message(resp: requests.Response) -> str:
        try:
            data = resp.json()
        except ValueError:
            return ""
        return _one_line(data.get("message", "")) if isinstance(data, dict) else ""

    @staticmethod
    def _limited(resp: requests.Response, message: str) -> bool:
        return (resp.headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in resp.headers
                or "rate limit" in message.lower())

    def _rate_message(self, resp: requests.Response) -> str:
        who = "for this GITHUB_TOKEN" if self.token else "for unauthenticated requests"
        reset = resp.headers.get("X-RateLimit-Reset", "")
        retry = resp.headers.get("Retry-After", "")
        when = ""
        if resp.headers.get("X-RateLimit-Remaining") == "0" and reset.isdigit():
            at = datetime.fromtimestamp(int(reset), tz=timezone.utc)
            minutes = max(0, math.ceil((int(reset) - time.time()) / 60))
            when = f"; it resets at {at:%Y-%m-%d %H:%M} UTC (in {minutes} min)"
        elif retry.isdigit():
            when = f"; retry in {retry} s"
        hint = "" if self.token else "; set GITHUB_TOKEN to a GitHub token for a higher limit"
        return f"GitHub API rate limit exceeded {who}{when}{hint}"

    # -- queries ---------------------------------------------------------------------------------
    def latest_tag(self, repo: str) -> str:
        data = self.get(f"/repos/{repo}/releases/latest")
        tag = data.get("tag_name") if isinstance(data, dict) else None
        if not isinstance(tag, str):
            raise GitHubError(f"{self.base}/repos/{repo}/releases/latest has no tag_name")
        return tag

    def newest_in_line(self, repo: str, major: int, minor: int) -> Version | None:
        """Newest non-prerelease ``major.minor.x`` in the release list (newest first; stops at
        the first page that holds the line)."""
        best: Version | None = None
        for page in range(1, MAX_PAGES + 1):
            data = self.get(f"/repos/{repo}/releases", per_page=100, page=page)
            if not isinstance(data, list):
                raise GitHubError(f"{self.base}/repos/{repo}/releases did not answer a list")
            for rel in data:
                if not isinstance(rel, dict) or rel.get("draft") or rel.get("prerelease"):
                    continue
                v = _version(rel.get("tag_name"))
                if v and not v.pre and (v.major, v.minor) == (major, minor) and (best is None or v > best):
                    best = v
            if best is not None or len(data) < 100:
                break
        return best

    def head(self, repo: str, ref: str) -> str:
        data = self.get(f"/repos/{repo}/commits/{ref}")
        sha = data.get("sha") if isinstance(data, dict) else None
        if not isinstance(sha, str):
            raise GitHubError(f"{self.base}/repos/{repo}/commits/{ref} has no sha")
        return sha


def _version(tag: object) -> Version | None:
    try:
        return Version.parse(str(tag))
    except VersionError:
        return None


def _newer(a: Version, b: Version) -> bool:
    """``a`` is a newer release than ``b`` (a release sorts after its own pre-releases)."""
    def key(v: Version) -> tuple[int, int, int, int, str]:
        return (v.major, v.minor, v.patch, 0 if v.pre else 1, v.pre)
    return key(a) > key(b)


@dataclass
class Row:
    key: str
    repo: str
    pinned: str
    newest: str
    line: str = ""  # "newest 1.7.x" for tracked lines
    status: str = ""
    update: bool = False


def check(pins: Pins, api: GitHub) -> list[Row]:
    """One row per pinned component (built-in repositories only); raises :class:`GitHubError`."""
    rows: list[Row] = []
    for key, repo in REPOS.items():
        if key not in pins.versions:
            continue
        pinned = pins.version(key)
        tag = api.latest_tag(repo)
        newest = _version(tag)
        row = Row(key, repo, str(pinned), tag.removeprefix("v") if newest is None else str(newest))
        notes = []
        in_line = None
        if key in LINES:
            in_line = api.newest_in_line(repo, pinned.major, pinned.minor)
            row.line = f"{in_line or '-'} ({pinned.major}.{pinned.minor}.x)"
            if in_line and _newer(in_line, pinned):
                notes.append(f"patch {in_line}")
                row.update = True
        if newest is None:
            notes.append(f"newest tag {tag!r} is not a version")
        elif _newer(newest, pinned) and newest != in_line:
            notes.append(f"newer {newest}")
            row.update = True
        row.status = "; ".join(notes) if notes else "up to date"
        rows.append(row)
    for key, (repo, ref) in COMMITS.items():
        if key not in pins.versions:
            continue
        pinned_sha = pins.commit(key)
        head = api.head(repo, ref)
        same = head == pinned_sha
        rows.append(Row(key, f"{repo}@{ref}", pinned_sha[:12], head[:12],
                        status="at head" if same else f"{ref} moved",
                        update=not same))
    return rows
