"""Resumable downloads with checksums, and archive extraction that never leaves half-written output.

``download_file`` tries each URL in turn. Bytes go to ``.<name>.part`` beside the target; a later call
continues it with an HTTP ``Range`` request (a server that ignores the range answers 200 and the file
starts over). The finished file is checked against its md5 and/or sha256 and only then renamed to the
target; a sha256 may be given by its leading hex digits only (torch.hub's ``<name>-<hex>.pth`` convention). A
mismatch deletes the partial file (it cannot be resumed into a good one) and names the URL, the expected and the
found digest.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from debias.errors import InputError

CHUNK = 1 << 20


class DownloadError(InputError, RuntimeError):
    """A download that failed from every URL, or whose file is not the published one: the message names the
    URLs, the target file and the reason (a job shows it alone, without a traceback)."""


def file_digest(path: str | Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, part: Path, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range not satisfiable: the partial file is already complete
            return
        raise
    with response:
        resumed = have and response.status == 206
        length = response.headers.get("Content-Length")
        expected = (have if resumed else 0) + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as fh:
            try:
                shutil.copyfileobj(response, fh, CHUNK)
            except http.client.HTTPException as exc:  # IncompleteRead: keep what arrived
                raise OSError(f"connection dropped ({exc!r})") from exc
    got = part.stat().st_size
    if expected is not None and got < expected:
        raise OSError(f"connection dropped after {got} of {expected} bytes; the partial file {part} is kept "
                      "and the next attempt continues it")


def download_file(urls: list[str], target: str | Path, md5: str | None = None, sha256: str | None = None,
                  timeout: float = 60.0) -> Path:
    """Download ``target`` from the first of ``urls`` that delivers a file with the given checksums (``sha256``: the
    whole digest or its leading hex digits)."""
    target = Path(target)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.parent / f".{target.name}.part"
    errors = []
    for url in urls:
        try:
            _fetch(url, part, timeout)
        except (OSError, urllib.error.URLError) as exc:  # keep the partial file: the next URL resumes it
            errors.append(f"{url}: {exc}")
            continue
        bad = [(alg, want.lower(), got) for alg, want in (("md5", md5), ("sha256", sha256)) if want
               for got in [file_digest(part, alg)] if not got.startswith(want.lower())]
        if bad:
            part.unlink(missing_ok=True)
            errors.append(f"{url}: " + "; ".join(
                f"{alg} {got}, expected {want}" if len(want) == len(got) else f"{alg} {got}, expected one starting "
                f"with {want}" for alg, want, got in bad))
            continue
        part.replace(target)
        return target
    raise DownloadError(f"could not download {target.name} into {target.parent}:\n  " + "\n  ".join(errors))


def extract_zip(archive: str | Path, dest: str | Path, members: list[str]) -> None:
    """Unpack the top-level ``members`` (files or folders) of ``archive`` into ``dest``.

    Everything is unpacked into a temporary folder inside ``dest`` first and moved into place member by
    member, so an interrupted extraction leaves no partial folder under its final name.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            for member in members:
                if not any(n == member or n.startswith(member.rstrip("/") + "/") for n in names):
                    raise DownloadError(f"{archive}: has no entry {member!r} (expected {', '.join(members)})")
            zf.extractall(tmp)
        for member in members:
            final = dest / member
            if final.exists():
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / member).replace(final)


def extract_tar_folder(archive: str | Path, dest: str | Path, folder: str, marker: str) -> Path:
    """Unpack a (gzipped) tar archive and move the folder that holds ``marker`` to ``dest/folder``.

    The archive may hold that folder at its top level or one level down (``name/marker``); it is unpacked
    (tarfile's ``data`` filter: no absolute paths, links or devices outside) into a temporary folder inside
    ``dest`` and moved into place in one rename, so an interrupted extraction leaves nothing under the final name.
    """
    import tarfile

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / folder
    with tempfile.TemporaryDirectory(dir=dest, prefix=".extract-") as tmp_dir:
        tmp = Path(tmp_dir) / "x"  # a folder of its own, so that even a top-level marker's folder can be moved
        try:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DownloadError(f"{archive}: not a readable tar archive ({type(exc).__name__}: {exc})") from exc
        found = [p.parent for p in [tmp / marker, *tmp.glob(f"*/{marker}")] if p.is_file()]
        if len(found) != 1:
            raise DownloadError(f"{archive}: expected one folder holding {marker!r} at the top level or one level "
                                f"down, found {len(found)}")
        if not final.exists():
            found[0].replace(final)
    return final
