"""parse_checksum against every checksum format the installed releases publish."""
from __future__ import annotations

import pytest

from dockless.checksums import ChecksumError, is_sha256, parse_checksum

A = "a" * 64
B = "0123456789abcdef" * 4
C = "f" * 64


def test_coreutils_text_mode_containerd() -> None:
    text = f"{A}  containerd-1.7.20-windows-amd64.tar.gz\n"
    assert parse_checksum(text, "containerd-1.7.20-windows-amd64.tar.gz") == A


def test_coreutils_binary_mode_star() -> None:
    assert parse_checksum(f"{B} *crictl-v1.36.0-linux-amd64.tar.gz\n", "crictl-v1.36.0-linux-amd64.tar.gz") == B


def test_windows_container_networking_release_prefix() -> None:
    name = "windows-container-networking-cni-amd64-v0.3.1.zip"
    assert parse_checksum(f"{A}  ./release/{name}\n", name) == A


def test_bare_digest_is_for_the_one_asset() -> None:
    assert parse_checksum(f"{B}\n", "cni-plugins-linux-amd64-v1.5.1.tgz") == B
    assert parse_checksum(B, "anything") == B  # no trailing newline


def test_runc_multi_asset_file() -> None:
    text = (
        f"{A}  runc.amd64\n"
        f"{B}  runc.arm64\n"
        f"{C}  libseccomp-2.5.5.tar.gz\n"
    )
    assert parse_checksum(text, "runc.amd64") == A
    assert parse_checksum(text, "runc.arm64") == B


def test_uppercase_crlf_bom_and_comments() -> None:
    text = "\ufeff# generated\r\n" + f"{A.upper()}  nat.zip\r\n"
    assert parse_checksum(text, "nat.zip") == A


def test_bsd_tag_format() -> None:
    assert parse_checksum(f"SHA256 (runc.amd64) = {B}\n", "runc.amd64") == B


def test_asset_given_with_path_matches_basename() -> None:
    assert parse_checksum(f"{A}  runc.amd64\n", "downloads/runc.amd64") == A


def test_exact_name_wins_over_basename() -> None:
    text = f"{A}  x86/tool.zip\n{B}  tool.zip\n"
    assert parse_checksum(text, "tool.zip") == B


def test_absent_asset_names_source_and_asset() -> None:
    with pytest.raises(ChecksumError) as ei:
        parse_checksum(f"{A}  runc.arm64\n", "runc.amd64", source="https://x/runc.sha256sum")
    msg = str(ei.value)
    assert "https://x/runc.sha256sum" in msg and "runc.amd64" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "deadbeef  runc.amd64\n",  # too short
        "<html>Not Found</html>\n",
        f"{A}0  runc.amd64\n",  # 65 hex
    ],
)
def test_malformed_raises(text: str) -> None:
    with pytest.raises(ChecksumError) as ei:
        parse_checksum(text, "runc.amd64", source="mirror/runc.sha256sum")
    assert "mirror/runc.sha256sum" in str(ei.value)


def test_ambiguous_entries_raise() -> None:
    with pytest.raises(ChecksumError):
        parse_checksum(f"{A}  a/x.zip\n{B}  b/x.zip\n", "x.zip")
    with pytest.raises(ChecksumError):
        parse_checksum(f"{A}\n{B}  x.zip\n", "y.zip")


def test_same_digest_listed_twice_is_fine() -> None:
    assert parse_checksum(f"{A}  x.zip\n{A}  ./release/x.zip\n", "x.zip") == A


def test_is_sha256() -> None:
    assert is_sha256(A) and not is_sha256(A[:-1]) and not is_sha256("g" * 64)
