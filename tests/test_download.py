"""Resumable, checksummed downloads against a server on 127.0.0.1 that honours Range requests."""

import hashlib
import http.server
import threading
import zipfile
from functools import partial

import pytest

from debias.data.download import DownloadError, download_file, extract_zip


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files; answers ``Range: bytes=N-`` with 206; ``cut`` bytes max per response (a dropped link)."""

    cut = None
    requests: list = []

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        if rng:
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(data):
                self.send_error(416)
                return
        body = data[start:]
        if self.cut is not None:
            body = body[: self.cut]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(data) - start))  # announces the whole rest ...
        self.end_headers()
        self.wfile.write(body)  # ... but may send less: the client sees a short read

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    RangeHandler.cut, RangeHandler.requests = None, []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def test_interrupted_download_resumes_and_is_checked(tmp_path, server):
    served, url = server
    blob = bytes(range(256)) * 400
    (served / "a.bin").write_bytes(blob)
    md5, sha = hashlib.md5(blob).hexdigest(), hashlib.sha256(blob).hexdigest()
    RangeHandler.cut = 30_000  # the link drops after 30 kB
    with pytest.raises(DownloadError, match="could not download a.bin"):
        download_file([url + "a.bin"], tmp_path / "out" / "a.bin", md5=md5, sha256=sha)
    part = tmp_path / "out" / ".a.bin.part"
    assert not (tmp_path / "out" / "a.bin").exists()
    RangeHandler.cut = None
    got = download_file(["http://127.0.0.1:9/a.bin", url + "a.bin"], tmp_path / "out" / "a.bin", md5=md5, sha256=sha)
    assert got.read_bytes() == blob and not part.exists()
    assert RangeHandler.requests[-1] == "bytes=30000-"  # continued, not restarted


def test_checksum_mismatch_deletes_the_partial_file(tmp_path, server):
    served, url = server
    (served / "b.bin").write_bytes(b"x" * 1000)
    with pytest.raises(DownloadError, match=r"b\.bin: sha256 [0-9a-f]{64}, expected 00"):
        download_file([url + "b.bin"], tmp_path / "b.bin", sha256="00" * 32)
    assert not list(tmp_path.glob("*b.bin*"))


def test_extract_zip_places_members_and_rejects_missing_ones(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations/instances_val2014.json", "{}")
        zf.writestr("annotations/captions_val2014.json", "{}")
    extract_zip(archive, tmp_path / "coco", ["annotations"])
    assert sorted(p.name for p in (tmp_path / "coco" / "annotations").iterdir()) == [
        "captions_val2014.json", "instances_val2014.json"]
    with pytest.raises(DownloadError, match="has no entry 'val2014'"):
        extract_zip(archive, tmp_path / "coco2", ["val2014"])
    assert not (tmp_path / "coco2" / "val2014").exists()
