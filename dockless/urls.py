"""URL strings as downloads name them: ``http(s)://``, ``file://`` or a plain local path
(``C:\\…`` or ``/…``)."""
from __future__ import annotations

import posixpath
import re
from pathlib import PureWindowsPath
from urllib.parse import unquote, urlsplit

DRIVE_PATH = re.compile(r"^[A-Za-z]:[\\/]")


def url_basename(url: str) -> str:
    """File name at the end of an http(s)/file URL or a local path."""
    if DRIVE_PATH.match(url) or "\\" in url:
        return PureWindowsPath(url).name
    return posixpath.basename(unquote(urlsplit(url).path).rstrip("/"))
