import gzip
import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest
import torch

from debias.data import mnist
from debias.data.mini.idx import write_idx
from debias.data.mini.mnist import load_embedded_digits, stratified_split
from debias.errors import DataFormatError


def test_idx_written_is_read_back_by_torchvision(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 7, dtype=np.uint8)
    raw = mnist.raw_dir(tmp_path)
    for key, arr in (("train_images", x), ("train_labels", y), ("test_images", x[:3]), ("test_labels", y[:3])):
        write_idx(raw / mnist.RAW_FILES[key], arr)
    # the IDX header, byte by byte (LeCun's format): 0 0 0x08 ndim, then big-endian sizes
    head = (raw / mnist.RAW_FILES["train_images"]).read_bytes()[:16]
    assert head == bytes([0, 0, 8, 3, 0, 0, 0, 7, 0, 0, 0, 28, 0, 0, 0, 28])
    data = mnist.read_mnist(tmp_path)
    assert torch.equal(data["train"][0], torch.from_numpy(x))
    assert data["test"][1].tolist() == y[:3].tolist()


def test_embedded_split_is_stratified(embedded_mnist):
    x, y = load_embedded_digits()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8
    tr, te = stratified_split(y, 100, seed=0)
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == 5000
    assert np.bincount(y[te]).tolist() == [100] * 10
    assert embedded_mnist["train"][0].shape == (4000, 28, 28)
    assert torch.bincount(embedded_mnist["test"][1]).tolist() == [100] * 10


def test_missing_mnist_names_path_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mnist\.root.*train-images-idx3-ubyte"):
        mnist.read_mnist(tmp_path / "nowhere", key="mnist.root")


def test_a_truncated_or_foreign_idx_file_is_named_with_both_sizes_and_the_fix(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    raw = mnist.raw_dir(tmp_path)
    for key, arr in (("train_images", x), ("train_labels", x[:, 0, 0]), ("test_images", x), ("test_labels", x[:, 0, 0])):
        write_idx(raw / mnist.RAW_FILES[key], arr)
    images = raw / mnist.RAW_FILES["test_images"]
    images.write_bytes(images.read_bytes()[:-100])  # 16 + 7*28*28 = 5,504 bytes in full
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte: 5,404 bytes, but its header \(7 x 28 x 28\) "
                                              r"says 5,504: the file is truncated .* \(config key mnist\.root\)"):
        mnist.read_mnist(tmp_path)
    images.write_bytes(b"<html>not found</html>")  # an error page saved under the file's name
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte: not an IDX file \(its first bytes are "
                                              r"3c68746d"):
        mnist.read_mnist(tmp_path)


def test_download_from_a_local_mirror(tmp_path, monkeypatch, embedded_mnist_root):
    """The real download code against a server on 127.0.0.1 serving gzipped IDX files."""
    from torchvision.datasets import MNIST

    served = tmp_path / "served"
    served.mkdir()
    resources = []
    for name in mnist.RAW_FILES.values():
        blob = gzip.compress((mnist.raw_dir(embedded_mnist_root) / name).read_bytes())
        (served / f"{name}.gz").write_bytes(blob)
        resources.append((f"{name}.gz", hashlib.md5(blob).hexdigest()))
    monkeypatch.setattr(MNIST, "resources", resources)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dead = "http://127.0.0.1:9/"  # nothing listens: the next mirror must be tried
        good = f"http://127.0.0.1:{server.server_address[1]}/"
        mnist.download_mnist(tmp_path / "root", [dead, good])
    finally:
        server.shutdown()
    for name in mnist.RAW_FILES.values():
        got = (mnist.raw_dir(tmp_path / "root") / name).read_bytes()
        assert got == (mnist.raw_dir(embedded_mnist_root) / name).read_bytes()
    assert not list(mnist.raw_dir(tmp_path / "root").glob("*.gz"))
    # a corrupted file (md5 mismatch) is refused and nothing is left behind
    monkeypatch.setattr(MNIST, "resources", [(resources[0][0], "0" * 32)])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RuntimeError, match="could not download"):
            mnist.download_mnist(tmp_path / "bad", [f"http://127.0.0.1:{server.server_address[1]}/"])
    finally:
        server.shutdown()
    assert mnist.missing_files(tmp_path / "bad") and not any(mnist.raw_dir(tmp_path / "bad").iterdir())
