"""steplr.training.data on real files and a real loopback HTTP server: qwerty, digits, IDX parsing, MNIST
downloads."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from steplr.training import data
from steplr.training.data import DataError, Dataset, load_dataset, load_digits, load_mnist, load_qwerty, read_idx

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach a host other than this machine, and keep proxies out of the way."""
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to contact {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def no_system_fashion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the real Debian Fashion-MNIST directory so only the test's own files are found."""
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-such-system-dir")


# ---------------------------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: zero bytes, type 0x08, ndim, big-endian sizes, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def make_split(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n, dtype=np.uint8)


ARRAYS = (*make_split(1, 12), *make_split(2, 5))  # train images, train labels, test images, test labels


def write_mnist(directory: Path, *, gz: bool, arrays: tuple[np.ndarray, ...] = ARRAYS) -> dict[str, str]:
    """Write the four files into ``directory``; return the MD5 of each file written, keyed by name."""
    directory.mkdir(parents=True, exist_ok=True)
    sums = {}
    for stem, array in zip(STEMS, arrays):
        payload = idx_bytes(array)
        # mtime=0 keeps the gzip bytes, and so the checksums, reproducible.
        payload, name = (gzip.compress(payload, mtime=0), f"{stem}.gz") if gz else (payload, stem)
        (directory / name).write_bytes(payload)
        sums[name] = hashlib.md5(payload).hexdigest()
    return sums


def assert_matches_arrays(ds: Dataset, name: str) -> None:
    train_images, train_labels, test_images, test_labels = ARRAYS
    assert ds.name == name and ds.num_classes == 10 and ds.num_features == 784
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (5, 784)
    expected = torch.from_numpy(train_images.reshape(12, -1).astype(np.float32) / 255)
    assert torch.equal(ds.x_train, expected)
    assert torch.equal(ds.x_test, torch.from_numpy(test_images.reshape(5, -1).astype(np.float32) / 255))
    assert torch.equal(ds.y_train, torch.from_numpy(train_labels.astype(np.int64)))
    assert torch.equal(ds.y_test, torch.from_numpy(test_labels.astype(np.int64)))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


class TruncatingHandler(QuietHandler):
    """Announce each file's full length but send only half of it, then hang up."""

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True


@contextmanager
def serve(directory: Path, handler: type[http.server.BaseHTTPRequestHandler] = QuietHandler) -> Iterator[str]:
    """Serve ``directory`` on a loopback port for the duration of the block; yield its base URL."""
    factory: Callable[..., Any] = functools.partial(handler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---------------------------------------------------------------------------------------------- qwerty


def notes_qwerty() -> tuple[torch.Tensor, ...]:
    """The reference notes' code, verbatim apart from restoring NumPy's global RNG afterwards."""
    from sklearn.model_selection import train_test_split

    state = np.random.get_state()
    try:
        np.random.seed(42)
        n_per_class = 300  # the notes' three blobs
        means = np.array([[2, 1], [-2, 1], [0, -3]])
        cov = np.array([[1, 0], [0, 1]])
        X = np.zeros((3 * n_per_class, 2), np.float32)
        y = np.zeros(3 * n_per_class, np.int64)
        for i in range(3):
            idx = range(i * n_per_class, (i + 1) * n_per_class)
            X[idx, :] = np.random.multivariate_normal(means[i], cov, n_per_class)
            y[idx] = i
        X_t = torch.tensor(X, dtype=torch.float32)
        y_t = torch.tensor(y, dtype=torch.long)
        X_train, X_test, y_train, y_test = train_test_split(X_t, y_t, test_size=0.2, shuffle=True, random_state=42)
    finally:
        np.random.set_state(state)
    return X_train, X_test, y_train, y_test


def test_qwerty_is_bitwise_equal_to_the_reference_notes():
    x_train, x_test, y_train, y_test = notes_qwerty()
    ds = load_qwerty()
    assert ds.name == "qwerty" and ds.num_classes == 3 and ds.num_features == 2
    assert ds.x_train.shape == (720, 2) and ds.x_test.shape == (180, 2)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    for ours, theirs in ((ds.x_train, x_train), (ds.x_test, x_test), (ds.y_train, y_train), (ds.y_test, y_test)):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)


def test_private_generator_draws_what_the_seeded_global_one_does():
    state = np.random.get_state()
    try:
        np.random.seed(42)
        global_draw = np.random.multivariate_normal([2, 1], np.eye(2), 300)
    finally:
        np.random.set_state(state)
    assert np.array_equal(np.random.RandomState(42).multivariate_normal([2, 1], np.eye(2), 300), global_draw)


def test_qwerty_leaves_numpys_global_rng_alone():
    np.random.seed(1234)
    before = np.random.get_state()
    load_qwerty()
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_neither_the_module_nor_qwerty_imports_sklearn():
    code = (
        "import sys, steplr.training.data; steplr.training.data.load_qwerty(); "
        "assert 'sklearn' not in sys.modules, 'sklearn imported on the Qwerty path'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------- digits


def test_digits_shapes_range_and_stratification():
    ds = load_digits(seed=0)
    assert ds.name == "digits" and ds.num_classes == 10 and ds.num_features == 64
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert ds.x_train.dtype == torch.float32 and ds.y_test.dtype == torch.int64
    both = torch.cat([ds.x_train, ds.x_test])
    assert both.min() == 0 and both.max() == 1
    # Stratified: every class's share of the test set is within one sample of its share overall.
    train_counts = torch.bincount(ds.y_train, minlength=10)
    test_counts = torch.bincount(ds.y_test, minlength=10)
    expected = (train_counts + test_counts).double() * 0.2
    assert torch.all((test_counts.double() - expected).abs() <= 1)


def test_digits_seed_controls_the_split():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1, test_size=0.5)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert c.x_test.shape == (899, 64)
    assert not torch.equal(a.x_train[:100], load_digits(seed=1).x_train[:100])


# ---------------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 1, 3, 2)])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, shape: tuple[int, ...], gz: bool):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    payload = idx_bytes(array)
    path = tmp_path / "file.idx"
    path.write_bytes(gzip.compress(payload) if gz else payload)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == shape and np.array_equal(out, array)
    out[...] = 0  # writable, so torch.from_numpy will not warn


def test_gzip_is_detected_by_content_not_name(tmp_path: Path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "plain.gz").write_bytes(idx_bytes(array))
    (tmp_path / "packed").write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(read_idx(tmp_path / "plain.gz"), array)
    assert np.array_equal(read_idx(str(tmp_path / "packed")), array)


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "truncated IDX file"),
        (b"\x00\x00", "truncated IDX file"),
        (GOOD[:10], "truncated IDX header"),
        (GOOD[:-1], "truncated IDX data"),
        (GOOD + b"\x00", "size mismatch"),
        (b"\x12\x34" + GOOD[2:], "not an IDX file"),
        (GOOD[:2] + b"\x0d" + GOOD[3:], "unsupported IDX data type 0x0d"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
        (gzip.compress(GOOD)[:-12], "corrupt or truncated gzip"),
        (gzip.compress(GOOD)[:12] + b"\xff" * 20, "corrupt or truncated gzip"),
        (gzip.compress(GOOD[:-3]), "truncated IDX data"),
    ],
)
def test_bad_idx_files_raise_data_error_naming_the_file(tmp_path: Path, payload: bytes, message: str):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def gzip_of(header: bytes, zeros: int) -> bytes:
    """``header`` then ``zeros`` zero bytes, gzip-compressed a megabyte at a time (a 2 GB payload is ~2 MB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    block = bytes(1 << 20)
    parts = [packer.compress(header)]
    for start in range(0, zeros, len(block)):
        parts.append(packer.compress(block[: min(len(block), zeros - start)]))
    return b"".join(parts) + packer.flush()


def idx_header(*shape: int) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def peak_bytes_reading(path: Path) -> tuple[int, BaseException | None]:
    """Peak bytes Python allocated while read_idx(path) ran (tracemalloc), and what it raised."""
    tracemalloc.start()
    try:
        read_idx(path)
        raised = None
    except DataError as error:
        raised = error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


def test_a_gzip_idx_bomb_is_read_only_up_to_its_declared_size(tmp_path: Path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of(idx_header(1000, 28, 28), 128 << 20))  # declares 784 kB, expands to 128 MB
    assert path.stat().st_size < 1 << 20
    peak, raised = peak_bytes_reading(path)
    assert isinstance(raised, DataError) and str(path) in str(raised)
    assert "IDX size mismatch (the data goes on beyond the declared shape (1000, 28, 28))" in str(raised)
    assert peak < 8 << 20  # the declared 784 kB and a few read buffers, not the 128 MB it expands to


def test_an_idx_header_declaring_an_absurd_size_is_refused_before_any_data_is_read(tmp_path: Path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of(idx_header(2000, 1000, 1000), 4 << 20))  # declares 2 GB, holds 4 MB
    peak, raised = peak_bytes_reading(path)
    assert isinstance(raised, DataError) and str(path) in str(raised)
    assert "IDX header declares shape (2000, 1000, 1000), 2,000,000,000 bytes of data, more than steplr reads" in str(
        raised
    )
    assert peak < 1 << 20
    plain = tmp_path / "plain-idx3-ubyte"
    plain.write_bytes(idx_header(4000, 1000, 1000))
    with pytest.raises(DataError, match="4,000,000,000 bytes of data, more than steplr reads"):
        read_idx(plain)


def test_a_header_that_promises_more_than_the_file_holds_costs_no_memory_up_front(tmp_path: Path):
    path = tmp_path / "short-idx3-ubyte.gz"
    path.write_bytes(gzip_of(idx_header(1000, 1000, 1000), 3))  # declares 1 GB (the most allowed), holds 3 bytes
    peak, raised = peak_bytes_reading(path)
    assert isinstance(raised, DataError) and str(path) in str(raised)
    assert "truncated IDX data (shape (1000, 1000, 1000) needs 1000000000 bytes, found 3)" in str(raised)
    assert peak < 4 << 20  # a read buffer, not the gigabyte declared
    plain = tmp_path / "short-idx3-ubyte"
    plain.write_bytes(idx_header(1000, 1000, 1000) + b"abc")
    with pytest.raises(DataError, match="needs 1000000000 bytes, found 3"):
        read_idx(plain)


@pytest.mark.parametrize("gz", [False, True])
def test_an_empty_idx_set_is_a_data_error_naming_the_file(tmp_path: Path, gz: bool):
    train_images, train_labels, test_images, test_labels = ARRAYS
    write_mnist(tmp_path, gz=gz, arrays=(train_images[:0], train_labels[:0], test_images, test_labels))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    assert str(info.value) == (
        f"{tmp_path / (STEMS[0] + '.gz' * gz)}: holds no images (shape (0, 28, 28)), "
        f"and {tmp_path / (STEMS[1] + '.gz' * gz)} no labels"
    )


def test_missing_idx_file_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="absent-file"):
        read_idx(tmp_path / "absent-file")


# ---------------------------------------------------------------------------------------------- local MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_data_dir(tmp_path: Path, gz: bool):
    write_mnist(tmp_path, gz=gz)
    assert_matches_arrays(load_mnist(tmp_path, download=False), "mnist")


@pytest.mark.usefixtures("no_system_fashion")
@pytest.mark.parametrize(("kind", "subdir"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_raw_layout_is_found(tmp_path: Path, kind: str, subdir: str):
    write_mnist(tmp_path / subdir / "raw", gz=False)
    assert_matches_arrays(load_dataset(kind, data_dir=str(tmp_path), download=False), kind)


def test_fashion_system_dir_is_used_without_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_mnist(tmp_path / "system", gz=True)
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    assert_matches_arrays(load_mnist(kind="fashion-mnist", download=False), "fashion-mnist")


def test_image_and_label_counts_must_agree(tmp_path: Path):
    train_images, train_labels, test_images, test_labels = ARRAYS
    write_mnist(tmp_path, gz=False, arrays=(train_images, train_labels[:-1], test_images, test_labels))
    with pytest.raises(DataError, match=r"12 images but .*train-labels-idx1-ubyte holds 11 labels"):
        load_mnist(tmp_path, download=False)


@pytest.mark.usefixtures("no_system_fashion")
def test_missing_files_without_download_say_where_and_what(tmp_path: Path):
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, kind="fashion-mnist", download=False)
    message = str(info.value)
    for fragment in (*STEMS, str(tmp_path), str(tmp_path / "FashionMNIST" / "raw"), "--data-dir", "disabled"):
        assert fragment in message
    with pytest.raises(DataError, match=r"no data directory was given.*--data-dir"):
        load_mnist(download=True)


def test_load_dataset_dispatches_and_rejects_unknown_names():
    assert load_dataset("qwerty").name == "qwerty"
    assert torch.equal(load_dataset(" Digits ", seed=3).y_test, load_digits(seed=3).y_test)
    with pytest.raises(ValueError, match="qwerty, digits, mnist, fashion-mnist"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="kind"):
        load_mnist(kind="emnist")


# ---------------------------------------------------------------------------------------------- downloads


@pytest.fixture
def mirror_dir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    served = tmp_path / "served"
    return served, write_mnist(served, gz=True)


def test_download_from_loopback_mirror(tmp_path: Path, mirror_dir: tuple[Path, dict[str, str]]):
    served, sums = mirror_dir
    target = tmp_path / "new" / "data"
    with serve(served) as url:
        ds = load_mnist(target, mirrors=[url], checksums=sums, timeout=5)
    assert_matches_arrays(ds, "mnist")
    assert sorted(p.name for p in target.iterdir()) == sorted(sums)
    # Once there, the files are used without the network (a dead mirror would otherwise fail).
    assert_matches_arrays(load_mnist(target, mirrors=["http://127.0.0.1:9/"], checksums=sums), "mnist")


def test_checksum_mismatch_leaves_only_verified_files(tmp_path: Path, mirror_dir: tuple[Path, dict[str, str]]):
    served, sums = mirror_dir
    wrong = dict(sums, **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    target = tmp_path / "target"
    with serve(served) as url, pytest.raises(DataError, match=r"checksum mismatch for t10k-labels-idx1-ubyte\.gz"):
        load_mnist(target, mirrors=[url], checksums=wrong, timeout=5)
    left = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in target.iterdir()}
    assert left == {name: md5 for name, md5 in sums.items() if not name.startswith("t10k-labels")}


def test_truncated_download_is_rejected_and_removed(tmp_path: Path, mirror_dir: tuple[Path, dict[str, str]]):
    served, sums = mirror_dir
    target = tmp_path / "target"
    with serve(served, TruncatingHandler) as url, pytest.raises(DataError) as info:
        load_mnist(target, mirrors=[url], checksums=sums, timeout=5)
    assert "truncated download of train-images-idx3-ubyte.gz" in str(info.value) and url in str(info.value)
    assert not target.exists()  # no partial file, and no empty folder left behind


def test_first_mirror_404_second_mirror_works(tmp_path: Path, mirror_dir: tuple[Path, dict[str, str]]):
    served, sums = mirror_dir
    target = tmp_path / "target"
    with serve(served) as url:
        ds = load_mnist(target, mirrors=[url + "missing", url], checksums=sums, timeout=5)
    assert_matches_arrays(ds, "mnist")
    assert sorted(p.name for p in target.iterdir()) == sorted(sums)


def test_all_mirrors_failing_reports_each_url(tmp_path: Path, mirror_dir: tuple[Path, dict[str, str]]):
    served, sums = mirror_dir
    target = tmp_path / "target"
    with serve(served) as url, pytest.raises(DataError) as info:
        load_mnist(target, mirrors=[url + "a/", url + "b/"], checksums=sums, timeout=5)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "404" in message
    assert url + "a/" in message and url + "b/" in message and "\n" not in message
    assert not target.exists()  # the folder this download created is removed again


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="Debian's dataset-fashion-mnist is not installed"
)
def test_real_fashion_mnist_from_the_system_package():
    ds = load_mnist(kind="fashion-mnist", download=False)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.num_features == 784 and ds.num_classes == 10
    assert set(ds.y_train.unique().tolist()) == set(range(10)) == set(ds.y_test.unique().tolist())
    assert float(ds.x_test.min()) >= 0 and float(ds.x_test.max()) <= 1


def test_validation_split_is_stratified_seeded_and_disjoint():
    from steplr.training.data import split_validation

    data = load_digits()
    split = split_validation(data, 1 / 6)
    n = data.y_train.shape[0]
    assert split.y_val.shape[0] == math.ceil(n / 6) and split.y_train.shape[0] + split.y_val.shape[0] == n
    assert split.x_test is data.x_test  # the test set is never touched
    # Every training example lands on exactly one side.
    rows = {tuple(r) for r in data.x_train.tolist()}
    assert {tuple(r) for r in split.x_train.tolist()} | {tuple(r) for r in split.x_val.tolist()} == rows
    # Stratified: each class's share of the validation set is within one example of its share of the training set.
    for label in range(10):
        expected = int((data.y_train == label).sum()) / 6
        assert abs(int((split.y_val == label).sum()) - expected) <= 1
    again = split_validation(data, 1 / 6)
    assert torch.equal(again.x_val, split.x_val)  # the same split every time, whatever the run's seed
    assert split_validation(data, 0).y_val.shape[0] == 0


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, True, "0.2"])
def test_validation_fraction_is_checked(fraction):
    from steplr.training.data import split_validation

    with pytest.raises(ValueError, match="validation must be a fraction in"):
        split_validation(load_qwerty(), fraction)


@pytest.mark.skipif(not Path(data.FASHION_MNIST_SYSTEM_DIR).is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_the_12k_subset_is_a_fixed_stratified_draw_of_the_real_training_set():
    full = load_dataset("fashion-mnist", download=False)
    small = load_dataset("fashion-mnist-12k", download=False)
    assert small.name == "fashion-mnist-12k" and small.x_train.shape == (12_000, 784)
    assert torch.equal(small.x_test, full.x_test) and torch.equal(small.y_test, full.y_test)
    assert torch.bincount(small.y_train).tolist() == [1200] * 10  # 6,000 of each class in 60,000: a fifth of each
    # Rows of the full set, in their original order, and the same rows on every load.
    rows = {bytes(row.numpy()): i for i, row in enumerate(full.x_train)}
    positions = [rows[bytes(row.numpy())] for row in small.x_train[:200]]
    assert positions == sorted(positions)
    assert torch.equal(load_dataset("fashion-mnist-12k", download=False).x_train, small.x_train)
