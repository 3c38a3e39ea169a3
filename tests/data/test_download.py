import hashlib
import sys

import pytest

from lic.data.download import ChecksumError, DownloadError, OfflineError, download, sha256sum

BODY = bytes(range(256)) * 4096  # 1 MiB, not a multiple of the chunk size below
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr("lic.data.download.CHUNK_BYTES", 64 * 1024)


def test_good_file(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    out = download(http_server.url("a.bin"), tmp_path / "a.bin", SHA, len(BODY), progress=False)
    assert out.read_bytes() == BODY
    assert not (tmp_path / "a.bin.part").exists()
    assert sha256sum(out) == SHA


def test_existing_file_is_verified_not_downloaded_again(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    download(http_server.url("a.bin"), tmp_path / "a.bin", SHA, progress=False)
    download(http_server.url("a.bin"), tmp_path / "a.bin", SHA, progress=False)
    assert len(http_server.requests) == 1


def test_wrong_checksum_names_the_file_and_keeps_no_dest(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    dest = tmp_path / "a.bin"
    with pytest.raises(ChecksumError) as e:
        download(http_server.url("a.bin"), dest, "0" * 64, progress=False)
    assert str(dest) in str(e.value) and "sha256 mismatch" in str(e.value)
    assert not dest.exists() and not (tmp_path / "a.bin.part").exists()
    assert (tmp_path / "a.bin.corrupt").read_bytes() == BODY


def test_corrupted_existing_file_fails_with_its_name(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    dest = download(http_server.url("a.bin"), tmp_path / "a.bin", SHA, progress=False)
    data = bytearray(dest.read_bytes())
    data[1234] ^= 0xFF
    dest.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="a.bin: sha256 mismatch"):
        download(http_server.url("a.bin"), dest, SHA, progress=False)


def test_interrupted_transfer_resumes_within_the_call(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    http_server.drop_after["a.bin"] = 300_000
    out = download(http_server.url("a.bin"), tmp_path / "a.bin", SHA, len(BODY), retries=2,
                   backoff_s=0, progress=False)
    assert out.read_bytes() == BODY
    ranges = http_server.ranges("a.bin")
    assert ranges[0] is None and len(ranges) == 2
    resumed_from = int(ranges[1].split("=")[1].rstrip("-"))
    assert 0 < resumed_from <= 300_000  # only the missing bytes were requested


def test_interrupted_transfer_resumes_on_the_next_run(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    http_server.drop_after["a.bin"] = 500_000
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="next run resumes"):
        download(http_server.url("a.bin"), dest, SHA, retries=0, progress=False)
    part = tmp_path / "a.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(BODY) and not dest.exists()
    download(http_server.url("a.bin"), dest, SHA, progress=False)
    assert dest.read_bytes() == BODY and not part.exists()
    assert http_server.ranges("a.bin")[-1] == f"bytes={kept}-"


def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    http_server.ignore_range = True
    (tmp_path / "a.bin.part").write_bytes(BODY[:1000])
    out = download(http_server.url("a.bin"), tmp_path / "a.bin", SHA, progress=False)
    assert out.read_bytes() == BODY


def test_unreachable_host_says_how_to_place_the_file(closed_port, tmp_path):
    url = f"http://127.0.0.1:{closed_port}/kodim01.png"
    dest = tmp_path / "raw" / "kodim01.png"
    with pytest.raises(OfflineError) as e:
        download(url, dest, SHA, retries=0, timeout_s=2, progress=False)
    msg = str(e.value)
    assert url in msg and f"place it at {dest}" in msg and SHA in msg
    assert not dest.exists()


def test_http_error_is_reported(http_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(http_server.url("missing.bin"), tmp_path / "m.bin", progress=False)


def test_progress_is_shown(http_server, tmp_path, capsys):
    http_server.files["a.bin"] = BODY
    download(http_server.url("a.bin"), tmp_path / "a.bin", SHA, progress=True)
    err = capsys.readouterr().err
    assert "a.bin" in err and "%" in err


def test_wrong_size_is_a_checksum_error(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    with pytest.raises(ChecksumError, match="size"):
        download(http_server.url("a.bin"), tmp_path / "a.bin", None, len(BODY) + 1, progress=False)


# ------------------------------------------------------------------ servers that cut, lie and omit lengths
def test_cut_off_without_content_length_is_never_accepted(http_server, tmp_path):
    """No published checksum or size (tecnick) and no Content-Length: a body that just stops is kept in
    .part, not promoted; the next run resumes, and the server's Content-Range then confirms the length."""
    http_server.files["a.bin"] = BODY
    http_server.omit_length.add("a.bin")
    http_server.drop_after["a.bin"] = 300_000
    dest, part = tmp_path / "a.bin", tmp_path / "a.bin.part"
    with pytest.raises(DownloadError, match="did not state the file's length"):
        download(http_server.url("a.bin"), dest, progress=False)
    assert not dest.exists() and part.read_bytes() == BODY[:300_000]
    out = download(http_server.url("a.bin"), dest, progress=False)
    assert out.read_bytes() == BODY and not part.exists()
    assert http_server.ranges("a.bin")[-1] == "bytes=300000-"


def test_whole_body_without_any_length_is_not_accepted_either(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    http_server.omit_length.add("a.bin")
    http_server.ignore_range = True  # and no Content-Range ever: nothing confirms the length
    for _ in range(2):
        with pytest.raises(DownloadError, match="kept in .*a.bin.part, not used"):
            download(http_server.url("a.bin"), tmp_path / "a.bin", progress=False)
        assert not (tmp_path / "a.bin").exists()
    # with the published size (or checksum) the same body is verifiable, and accepted
    assert download(http_server.url("a.bin"), tmp_path / "a.bin", None, len(BODY), progress=False).read_bytes() == BODY


def test_206_that_restarts_at_byte_0_restarts_cleanly(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    http_server.range_from_zero.add("a.bin")
    (tmp_path / "a.bin.part").write_bytes(BODY[:1000])
    out = download(http_server.url("a.bin"), tmp_path / "a.bin", retries=1, backoff_s=0, progress=False)
    assert out.read_bytes() == BODY
    assert http_server.ranges("a.bin") == ["bytes=1000-", None]


def test_206_that_restarts_at_byte_0_with_no_retry_left_keeps_nothing(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    http_server.range_from_zero.add("a.bin")
    (tmp_path / "a.bin.part").write_bytes(BODY[:1000])
    with pytest.raises(DownloadError, match="asked for the bytes from 1000.*Content-Range 'bytes 0-"):
        download(http_server.url("a.bin"), tmp_path / "a.bin", retries=0, progress=False)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_truncated_file_at_the_destination_without_checksum_is_completed_not_trusted(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    dest = tmp_path / "a.bin"
    dest.write_bytes(BODY[:5000])
    assert download(http_server.url("a.bin"), dest, progress=False).read_bytes() == BODY
    assert http_server.ranges("a.bin") == ["bytes=5000-"]
    dest.write_bytes(BODY + b"junk")  # longer than the server's file: refused (416), downloaded again
    assert download(http_server.url("a.bin"), dest, retries=1, backoff_s=0, progress=False).read_bytes() == BODY


def test_whole_file_at_the_destination_without_checksum_is_confirmed_by_the_server(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    dest = tmp_path / "a.bin"
    dest.write_bytes(BODY)
    assert download(http_server.url("a.bin"), dest, progress=False).read_bytes() == BODY
    assert http_server.ranges("a.bin") == [f"bytes={len(BODY)}-"]  # answered 416 */len: nothing re-sent


def test_unverifiable_destination_offline_is_not_accepted(closed_port, tmp_path):
    dest = tmp_path / "a.bin"
    dest.write_bytes(BODY[:5000])
    with pytest.raises(OfflineError, match="write its sha256"):
        download(f"http://127.0.0.1:{closed_port}/a.bin", dest, retries=0, timeout_s=2, progress=False)
    assert dest.read_bytes() == BODY[:5000] and not (tmp_path / "a.bin.part").exists()  # left as it was


def test_server_length_other_than_the_published_size_is_refused(http_server, tmp_path):
    http_server.files["a.bin"] = BODY + b"x" * 100  # overlong file, Content-Length says so
    with pytest.raises(ChecksumError, match=f"size {len(BODY) + 100} bytes, expected size {len(BODY)}"):
        download(http_server.url("a.bin"), tmp_path / "a.bin", None, len(BODY), progress=False)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_bytes_beyond_the_length_are_never_kept(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    http_server.trailing["a.bin"] = b"garbage after the body"
    assert download(http_server.url("a.bin"), tmp_path / "a.bin", progress=False).read_bytes() == BODY
    http_server.omit_length.add("a.bin")  # no Content-Length: the published size bounds the body
    with pytest.raises(DownloadError, match="more than the 1048576 bytes"):
        download(http_server.url("a.bin"), tmp_path / "b.bin", None, len(BODY), progress=False)
    assert not (tmp_path / "b.bin").exists() and not (tmp_path / "b.bin.part").exists()


def test_cut_off_with_content_length_is_resumed_not_accepted(http_server, tmp_path):
    http_server.files["a.bin"] = BODY
    http_server.drop_after["a.bin"] = 300_000
    with pytest.raises(DownloadError, match="interrupted"):
        download(http_server.url("a.bin"), tmp_path / "a.bin", retries=0, progress=False)
    assert not (tmp_path / "a.bin").exists() and (tmp_path / "a.bin.part").stat().st_size == 300_000
