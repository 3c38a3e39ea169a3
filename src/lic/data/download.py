"""Resumable, verified, atomic HTTP downloads.

``download(url, dest, sha256=...)`` is the only way the project fetches data:

* the bytes go to ``dest.part`` and are moved onto ``dest`` only once complete and verified,
  so ``dest`` either does not exist or is whole; complete means of the published size, or, for a file
  with no published size or checksum, of the length the server stated (Content-Length, Content-Range):
  a body that just stops is never taken for a whole file;
* every response is checked: a 206 must start at the byte asked for (else the transfer restarts from 0),
  lengths must agree with each other and with the published size, and no byte beyond them is kept;
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
import re
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
    if sha256 is None:  # nothing published to verify it against: the user vouches for it
        return (
            f"Download {url} on a machine with internet access, place it at {dest} and write its sha256 "
            f"(`sha256sum {dest.name} > {dest.name}.sha256` in {dest.parent}) to trust it as it is; then run "
            f"the stage again (without that file, the stage asks the server to confirm the file's length)."
        )
    return (
        f"Download {url} on a machine with internet access and place it at {dest} with sha256 {sha256}, "
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
    :class:`ChecksumError`: the caller decides whether to delete it). With neither ``sha256`` nor ``size``
    there is nothing to verify it against, so it is treated as a partial download: moved to ``dest.part``
    and completed (or confirmed whole) by the server. ``retries`` is the number of extra attempts after a
    dropped connection; each one resumes where the last stopped.

    A file reaches ``dest`` only when its length is known to be right: ``size`` (the registry's) or, for a
    file with neither ``size`` nor ``sha256``, the length the server stated (Content-Length / Content-Range).
    A body that simply ends, with no length to compare it with, is kept in ``dest.part``, never promoted.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    unverified = False
    if dest.exists():
        if sha256 is not None or size is not None:
            verify(dest, sha256, size)
            return dest
        os.replace(dest, part)  # unverifiable: only the server can say whether it is whole
        unverified = True
    dest.parent.mkdir(parents=True, exist_ok=True)

    attempt = 0
    while True:
        try:
            stated = _fetch_into(url, part, size, timeout_s, progress, dest.name)
            break
        except OfflineError as e:
            if unverified and part.exists() and not dest.exists():
                os.replace(part, dest)  # left where the user put it, still unverified (nothing is pinned)
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

    if stated is None and sha256 is None and size is None:
        raise DownloadError(
            f"{url}: the server did not state the file's length (no Content-Length or Content-Range) and no "
            f"checksum is published, so a cut-off transfer cannot be told from a whole one; the "
            f"{part.stat().st_size} bytes received are kept in {part}, not used.\n"
            f"{manual_placement_hint(url, dest, sha256)}")
    try:
        verify(part, sha256, size)
    except ChecksumError as e:
        corrupt = dest.with_name(dest.name + ".corrupt")
        os.replace(part, corrupt)
        raise ChecksumError(f"{dest} (downloaded from {url}): {str(e).split(': ', 1)[1]} "
                            f"The bytes were moved to {corrupt}.") from e
    os.replace(part, dest)
    return dest


def _content_length(headers, url: str) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise DownloadError(f"{url}: malformed Content-Length {value!r}")
    return int(value)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)$")


def _content_range(headers) -> tuple[int, int, int | None] | None:
    """(first, last, total or None) of a ``Content-Range: bytes first-last/total`` header."""
    m = _CONTENT_RANGE.match((headers.get("Content-Range") or "").strip())
    if m is None or int(m[2]) < int(m[1]):
        return None
    return int(m[1]), int(m[2]), None if m[3] == "*" else int(m[3])


def _restart(part: Path, why: str) -> IncompleteTransfer:
    """Discard ``part`` (its bytes cannot be trusted as a prefix) and retry from byte 0."""
    part.unlink(missing_ok=True)
    return IncompleteTransfer(f"{why}; starting again from byte 0")


def _fetch_into(url: str, part: Path, size: int | None, timeout_s: float, progress: bool,
                label: str) -> int | None:
    """Append the missing bytes of ``url`` to ``part`` (resuming with HTTP Range) and return the file's
    length as the server stated it (None: it stated none).

    Every response is checked: a 206 must answer the range asked for (else the part is discarded and the
    transfer restarts from 0); Content-Length and Content-Range must agree with each other and with
    ``size``; no more bytes than that length are ever written; fewer raise :class:`IncompleteTransfer`."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # cannot be a prefix of the right file
        part.unlink()
        have = 0
    headers = {"User-Agent": "lic-repro", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            m = _UNSATISFIED_RANGE.match((e.headers.get("Content-Range") or "").strip())
            if m and int(m[1]) == have and (size is None or size == have):
                return have  # the .part file already holds every byte, and the server says so
            raise _restart(part, f"{url}: the server refused the range from byte {have} "
                                 f"(Content-Range {e.headers.get('Content-Range')!r})") from e
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        if _is_offline_reason(e.reason):
            raise OfflineError(f"cannot reach {url} ({e.reason}).") from e
        raise DownloadError(f"{url}: {e.reason}") from e
    except (socket.timeout, TimeoutError, ConnectionError) as e:
        raise OfflineError(f"cannot reach {url} ({e!r}).") from e

    with response:
        length = _content_length(response.headers, url)
        if response.status == 206:
            rng = _content_range(response.headers)
            if rng is None or rng[0] != have:
                raise _restart(part, f"{url}: asked for the bytes from {have}, the server answered 206 with "
                                     f"Content-Range {response.headers.get('Content-Range')!r}")
            if length is not None and length != rng[1] - rng[0] + 1:
                raise _restart(part, f"{url}: Content-Length {length} disagrees with Content-Range "
                                     f"{response.headers.get('Content-Range')!r}")
            total = rng[1] + 1  # the range asked for runs to the end of the file
            if rng[2] is not None and rng[2] != total:
                raise _restart(part, f"{url}: Content-Range {response.headers.get('Content-Range')!r} does "
                                     f"not run to the end of the file")
            mode = "ab"
        elif response.status == 200:  # the whole file (a server that ignores Range included): start again
            have, total, mode = 0, length, "wb"
        else:
            raise DownloadError(f"{url}: unexpected HTTP {response.status} {response.reason}")
        if size is not None and total is not None and total != size:
            raise ChecksumError(f"{url}: the server's file has size {total} bytes, expected size {size} bytes "
                                f"(the published one); not downloaded: the file changed or is the wrong one")
        limit = total if total is not None else size
        with open(part, mode) as f, tqdm(total=limit, initial=have, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=label, disable=not progress,
                                         leave=False) as bar:
            got = have
            while chunk := response.read(CHUNK_BYTES):
                if limit is not None and got + len(chunk) > limit:
                    f.close()
                    part.unlink()
                    raise DownloadError(f"{url}: the server sent more than the {limit} bytes expected; the "
                                        f"bytes were discarded")
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    got = part.stat().st_size
    if limit is not None and got < limit:
        raise IncompleteTransfer(f"{url}: connection closed after {got} of {limit} bytes")
    return total
