"""Resumable, verified, atomic HTTP downloads.

``download(url, dest, sha256=...)`` is the only way the project fetches data:

* the bytes go to ``dest.part`` and are moved onto ``dest`` only once complete and verified,
  so ``dest`` either does not exist or is whole;
* an interrupted transfer is resumed with an HTTP ``Range`` request, within the same call
  (``retries``) or on the next run, which finds the ``.part`` file;
* the sha256 is checked (when the registry knows it) and a mismatch raises
  :class:`ChecksumError` naming the file; the bad bytes are moved to ``dest.corrupt``;
* a host that cannot be reached raises :class:`OfflineError`, whose message names the URL and
  says where to place the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download failed for a reason other than a checksum mismatch."""


class OfflineError(DownloadError):
    """The server could not be reached (no network, DNS failure, refused, timed out)."""


class IncompleteTransfer(DownloadError):
    """The server closed the connection before sending every byte (resumable)."""


class ChecksumError(RuntimeError):
    """A file's sha256 differs from the expected value."""


_TRANSIENT = (http.client.IncompleteRead, ConnectionResetError, ConnectionAbortedError,
              http.client.RemoteDisconnected, socket.timeout, TimeoutError, IncompleteTransfer)


def sha256sum(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | os.PathLike, sha256: str | None, size: int | None = None) -> None:
    """Raise :class:`ChecksumError` (naming ``path``) if its size or sha256 is not the expected one."""
    path = Path(path)
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(
            f"{path}: size {path.stat().st_size} bytes, expected {size} bytes. "
            f"The file is incomplete or corrupted; delete it and run the data stage again."
        )
    if sha256 is not None:
        got = sha256sum(path)
        if got != sha256.lower():
            raise ChecksumError(
                f"{path}: sha256 mismatch (expected {sha256}, got {got}). "
                f"The file is corrupted or not the published one; delete it and run the data stage again."
            )


def manual_placement_hint(url: str, dest: Path, sha256: str | None) -> str:
    check = f" with sha256 {sha256}" if sha256 else ""
    return (
        f"Download {url} on a machine with internet access and place it at {dest}{check}, "
        f"then run the stage again (it verifies the file and does not download it a second time)."
    )


def _is_offline_reason(reason: object) -> bool:
    return isinstance(reason, (socket.gaierror, socket.timeout, TimeoutError, ConnectionError, OSError))


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    size: int | None = None,
    *,
    retries: int = 3,
    timeout_s: float = 30.0,
    backoff_s: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    If ``dest`` already exists it is verified, not downloaded again (a corrupted file raises
    :class:`ChecksumError`: the caller decides whether to delete it). ``retries`` is the number
    of extra attempts after a dropped connection; each one resumes where the last stopped.
    """
    dest = Path(dest)
    if dest.exists():
        verify(dest, sha256, size)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    attempt = 0
    while True:
        try:
            _fetch_into(url, part, size, timeout_s, progress, dest.name)
            break
        except OfflineError as e:
            raise OfflineError(f"{e}\n{manual_placement_hint(url, dest, sha256)}") from e
        except _TRANSIENT as e:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"download of {url} was interrupted {attempt} times ({e!r}); "
                    f"{part.stat().st_size if part.exists() else 0} bytes are kept in {part} "
                    f"and the next run resumes from there.\n{manual_placement_hint(url, dest, sha256)}"
                ) from e
            time.sleep(backoff_s * attempt)

    try:
        verify(part, sha256, size)
    except ChecksumError as e:
        corrupt = dest.with_name(dest.name + ".corrupt")
        os.replace(part, corrupt)
        raise ChecksumError(f"{dest} (downloaded from {url}): {str(e).split(': ', 1)[1]} "
                            f"The bytes were moved to {corrupt}.") from e
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, size: int | None, timeout_s: float, progress: bool,
                label: str) -> None:
    """Append the missing bytes of ``url`` to ``part`` (resuming with HTTP Range)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # cannot be a prefix of the right file
        part.unlink()
        have = 0
    headers = {"User-Agent": "lic-repro"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have and (size is None or have == size):
            return  # the .part file already holds every byte
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        if _is_offline_reason(e.reason):
            raise OfflineError(f"cannot reach {url} ({e.reason}).") from e
        raise DownloadError(f"{url}: {e.reason}") from e
    except (socket.timeout, TimeoutError, ConnectionError) as e:
        raise OfflineError(f"cannot reach {url} ({e!r}).") from e

    with response:
        if have and response.status != 206:  # server ignored Range: start again
            have = 0
            mode = "wb"
        else:
            mode = "ab" if have else "wb"
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=label, disable=not progress,
                                         leave=False) as bar:
            while chunk := response.read(CHUNK_BYTES):
                f.write(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    got = part.stat().st_size
    if total is not None and got < total:
        raise IncompleteTransfer(f"{url}: connection closed after {got} of {total} bytes")
