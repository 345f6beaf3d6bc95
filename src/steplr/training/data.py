"""Small classification datasets for the examples, loaded into memory as torch tensors.

Four datasets, all returned as a :class:`Dataset` of flattened ``float32`` features and ``int64`` labels:

* ``qwerty``: three 2-D Gaussian blobs, generated exactly as in the reference notes (720 train / 180 test);
* ``digits``: scikit-learn's bundled 8x8 digits (no download needed);
* ``mnist`` and ``fashion-mnist``: the 28x28 IDX files, found on disk (also in torchvision's ``MNIST/raw`` layout
  and Debian's ``dataset-fashion-mnist`` package) or downloaded with checksum verification.

Every problem with the data itself raises :class:`DataError`, whose message names the file or URL involved.
scikit-learn is imported only inside the loaders that need it, because importing it takes about a second.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from steplr._files import atomic_write
from steplr.errors import SteplrValueError

__all__ = [
    "DATASET_NAMES",
    "SUBSETS",
    "DEFAULT_CHECKSUMS",
    "DEFAULT_MIRRORS",
    "FASHION_MNIST_SYSTEM_DIR",
    "DataError",
    "Dataset",
    "Split",
    "TrainData",
    "VALIDATION_SEED",
    "load_dataset",
    "split_validation",
    "load_digits",
    "load_mnist",
    "load_qwerty",
    "read_idx",
]

DATASET_NAMES: Final = ("qwerty", "digits", "mnist", "fashion-mnist", "fashion-mnist-12k")
# Fixed subsets of a dataset's training set: the source and how many training examples are kept (a stratified draw
# with seed 0, in their original order); the test set stays whole.
SUBSETS: Final[Mapping[str, tuple[str, int]]] = {"fashion-mnist-12k": ("fashion-mnist", 12_000)}

# Where Debian's dataset-fashion-mnist package installs the files. Read at call time, so tests can monkeypatch it.
FASHION_MNIST_SYSTEM_DIR: str | os.PathLike[str] = "/usr/share/datasets/fashion-mnist"

DEFAULT_MIRRORS: Final[Mapping[str, tuple[str, ...]]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# MD5 of the published .gz files; only downloads are checked, since local copies may be recompressed.
DEFAULT_CHECKSUMS: Final[Mapping[str, Mapping[str, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# Train images, train labels, test images, test labels: the order _load_idx_set expects.
_IDX_FILES: Final = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# Sub-directory names torchvision uses (its class names), so files it already downloaded are reused.
_TORCHVISION_DIRS: Final = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_GZIP_MAGIC: Final = b"\x1f\x8b"
_IDX_UBYTE: Final = 0x08
_CHUNK: Final = 1 << 16
# The most data an IDX header may declare: far above the datasets these loaders are for (MNIST's largest file holds
# 47 MB), far below what a damaged or hostile header can claim (4 GB per dimension).
_MAX_IDX_BYTES: Final = 1 << 30
# Some mirrors refuse urllib's default agent string.
_USER_AGENT: Final = "steplr-data/0.1 (+urllib)"


class DataError(SteplrValueError):
    """A dataset file is missing, unreadable, corrupt or could not be downloaded."""


@dataclass(frozen=True)
class Dataset:
    """A train/test split held in memory: flattened float32 features and int64 class labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def num_features(self) -> int:
        """Number of input features per sample (columns of ``x_train``)."""
        return int(self.x_train.shape[1])


def _dataset(
    name: str,
    x_train: NDArray[np.float32],
    y_train: NDArray[np.int64],
    x_test: NDArray[np.float32],
    y_test: NDArray[np.int64],
    num_classes: int,
) -> Dataset:
    """Wrap NumPy arrays as a Dataset, forcing the float32 / int64 dtypes the models expect."""

    def tensor(array: NDArray[np.generic], dtype: torch.dtype) -> torch.Tensor:
        # ascontiguousarray also makes a private writable copy when needed, which torch.from_numpy requires.
        return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)

    return Dataset(
        name=name,
        x_train=tensor(x_train, torch.float32),
        y_train=tensor(y_train, torch.int64),
        x_test=tensor(x_test, torch.float32),
        y_test=tensor(y_test, torch.int64),
        num_classes=num_classes,
    )


class TrainData(Protocol):
    """What training reads from a dataset (a :class:`Dataset` has it; so may any object)."""

    @property
    def x_train(self) -> torch.Tensor: ...
    @property
    def y_train(self) -> torch.Tensor: ...
    @property
    def x_test(self) -> torch.Tensor: ...
    @property
    def y_test(self) -> torch.Tensor: ...
    @property
    def num_classes(self) -> int: ...


VALIDATION_SEED: Final = 0  # one split for every run seed and config, so comparisons stay paired


@dataclass(frozen=True)
class Split:
    """A training set with a validation split held out of it, and the untouched test set."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int


def split_validation(data: TrainData, fraction: float) -> Split:
    """Hold out ``fraction`` of the training set for validation: stratified by class, seeded with
    :data:`VALIDATION_SEED` (the same split whatever the run's seed). ``fraction=0`` holds out nothing.

    Raises:
        ValueError: for a fraction outside [0, 1) or one too small or large to leave every class on both sides.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise SteplrValueError(f"validation must be a fraction in [0, 1), got {fraction!r}")
    if fraction == 0:
        empty_x, empty_y = data.x_train[:0], data.y_train[:0]
        return Split(data.x_train, data.y_train, empty_x, empty_y, data.x_test, data.y_test, data.num_classes)
    from sklearn.model_selection import train_test_split

    labels = data.y_train.cpu().numpy()
    stratify = None if data.y_train.is_floating_point() else labels  # a regression's targets: a plain split
    try:
        keep, held = train_test_split(
            np.arange(labels.shape[0]), test_size=fraction, random_state=VALIDATION_SEED, stratify=stratify
        )
    except ValueError as error:
        raise SteplrValueError(
            f"validation {fraction:g} cannot split {labels.shape[0]} training examples by class: {error}"
        ) from None
    # Sorted, so the training examples keep their order (each run's epoch shuffles draw from this order).
    keep_index, held_index = torch.from_numpy(np.sort(keep)), torch.from_numpy(np.sort(held))
    return Split(
        data.x_train[keep_index],
        data.y_train[keep_index],
        data.x_train[held_index],
        data.y_train[held_index],
        data.x_test,
        data.y_test,
        data.num_classes,
    )


def load_qwerty() -> Dataset:
    """Three Gaussian blobs in 2-D, identical to the reference notes' data (720 train / 180 test samples)."""
    # A private generator draws the same numbers as np.random.seed(42) would, without resetting the caller's RNG.
    rng = np.random.RandomState(42)
    n_per_class = 300
    means = np.array([[2, 1], [-2, 1], [0, -3]])
    cov = np.array([[1, 0], [0, 1]])
    x = np.zeros((3 * n_per_class, 2), dtype=np.float32)
    y = np.zeros(3 * n_per_class, dtype=np.int64)
    for label, mean in enumerate(means):
        rows = slice(label * n_per_class, (label + 1) * n_per_class)
        x[rows] = rng.multivariate_normal(mean, cov, n_per_class)
        y[rows] = label
    # The notes split with train_test_split(test_size=0.2, shuffle=True, random_state=42): a permutation from
    # RandomState(42), its first 20% (rounded up) for test and the rest for training. Done here directly so the
    # Qwerty path does not import scikit-learn (a noticeable share of start-up); a test checks it against scikit-learn.
    order = np.random.RandomState(42).permutation(len(y))
    n_test = -(-len(y) * 2 // 10)
    test, train = order[:n_test], order[n_test:]
    return _dataset("qwerty", x[train], y[train], x[test], y[test], num_classes=3)


def load_digits(seed: int = 0, test_size: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits, pixels scaled to [0, 1], split stratified by class."""
    from sklearn.datasets import load_digits as sklearn_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_load_digits()
    # Pixel intensities in this dataset run from 0 to 16.
    x = np.asarray(bunch.data, dtype=np.float32) / np.float32(16)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    return _dataset("digits", x_train, y_train, x_test, y_test, num_classes=10)


def read_idx(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """Read an unsigned-byte IDX file (plain or gzip-compressed) into an array of its declared shape.

    The header comes first, read through gzip's streaming reader when the file is compressed; then exactly the
    number of bytes it declares, and never more: a gzip file that expands far beyond its header (a "zip bomb") is
    not decompressed past that point. A header declaring more than :data:`_MAX_IDX_BYTES` bytes of data, data
    shorter than declared, or bytes beyond it raise :class:`DataError` naming the file.
    """
    path = Path(path)
    try:
        file = open(path, "rb")  # noqa: SIM115 (a failed open is its own error; the with below closes it)
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror or exc}") from exc
    with file:
        # Decide by content rather than by name: some copies are stored decompressed under a .gz name, or vice versa.
        compressed = file.read(2) == _GZIP_MAGIC
        file.seek(0)
        if not compressed:
            return _read_idx(file, path, os.fstat(file.fileno()).st_size)
        try:
            with gzip.GzipFile(fileobj=file) as stream:
                try:
                    return _read_idx(stream, path, None)
                except DataError:
                    # Garbage from a damaged stream can look like a bad header: a little more of it tells.
                    stream.read(_CHUNK)
                    raise
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def _read_exactly(stream: io.BufferedIOBase, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the data."""
    parts = []
    while size > 0 and (part := stream.read(size)):
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _read_idx(stream: io.BufferedIOBase, path: Path, file_size: int | None) -> NDArray[np.uint8]:
    """Decode IDX from ``stream``: 2 zero bytes, a type code, the number of dimensions, big-endian sizes, then the
    data. ``file_size`` (plain files) lets a wrong size be refused before any data is read."""
    magic = _read_exactly(stream, 4)
    if len(magic) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(magic)} bytes, shorter than the 4-byte magic number)")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic number {magic.hex()} does not start with 0000)")
    type_code, ndim = magic[2], magic[3]
    if type_code != _IDX_UBYTE:
        raise DataError(f"{path}: unsupported IDX data type 0x{type_code:02x} (only 0x08, unsigned byte, is supported)")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    sizes = _read_exactly(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({4 + len(sizes)} bytes, {ndim} dimensions need {header})")
    shape = struct.unpack(f">{ndim}I", sizes)
    expected = math.prod(shape)
    if expected > _MAX_IDX_BYTES:
        raise DataError(
            f"{path}: IDX header declares shape {shape}, {expected:,} bytes of data, more than steplr reads "
            f"({_MAX_IDX_BYTES:,}); the file is damaged or not a dataset for these loaders"
        )
    found = None if file_size is None else file_size - header
    if found is not None and found < expected:
        raise DataError(f"{path}: truncated IDX data (shape {shape} needs {expected} bytes, found {found})")
    if found is not None and found > expected:
        raise DataError(f"{path}: IDX size mismatch ({found - expected} bytes beyond the declared shape {shape})")
    # Grown as data arrives, so a header that promises more than the file holds costs no memory up front; a
    # bytearray gives NumPy a writable buffer, so torch.from_numpy later neither warns nor shares read-only memory.
    data = bytearray()
    while len(data) < expected and (part := stream.read(min(expected - len(data), _CHUNK * 16))):
        data += part
    if len(data) < expected:
        raise DataError(f"{path}: truncated IDX data (shape {shape} needs {expected} bytes, found {len(data)})")
    if found is None and stream.read(1):  # one byte more is enough to know; the rest is never decompressed
        raise DataError(f"{path}: IDX size mismatch (the data goes on beyond the declared shape {shape})")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _find_idx_files(directory: Path) -> list[Path] | None:
    """The four MNIST-format files in ``directory`` (plain preferred over .gz), or None if any is missing."""
    found = []
    for stem in _IDX_FILES:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def _search_dirs(kind: str, data_dir: Path | None) -> list[Path]:
    """Directories that may already hold the files, in the order they are tried."""
    dirs = []
    if data_dir is not None:
        dirs += [data_dir, data_dir / _TORCHVISION_DIRS[kind] / "raw"]
    if kind == "fashion-mnist":
        dirs.append(Path(FASHION_MNIST_SYSTEM_DIR))
    return dirs


def _images_and_labels(
    images: NDArray[np.uint8], labels: NDArray[np.uint8], image_path: Path, label_path: Path
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Check one images/labels pair and convert it to flattened [0, 1] features and int64 labels."""
    if images.ndim != 3:
        raise DataError(f"{image_path}: expected a 3-D array of images, got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{label_path}: expected a 1-D array of labels, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{image_path} holds {images.shape[0]} images but {label_path} holds {labels.shape[0]} labels")
    if images.shape[0] == 0:
        raise DataError(f"{image_path}: holds no images (shape {images.shape}), and {label_path} no labels")
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"{label_path}: label {int(labels.max())} is outside the classes 0..9")
    features = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255)
    return features, labels.astype(np.int64)


def _load_idx_set(kind: str, files: Sequence[Path]) -> Dataset:
    """Read the four IDX files (train images, train labels, test images, test labels) into a Dataset."""
    arrays = [read_idx(path) for path in files]
    x_train, y_train = _images_and_labels(arrays[0], arrays[1], files[0], files[1])
    x_test, y_test = _images_and_labels(arrays[2], arrays[3], files[2], files[3])
    if x_train.shape[1] != x_test.shape[1]:
        raise DataError(f"{files[0]} and {files[2]} hold images of different sizes")
    return _dataset(kind, x_train, y_train, x_test, y_test, num_classes=10)


def _fetch(url: str, out: IO[bytes], timeout: float) -> tuple[str, int, int | None]:
    """Stream ``url`` into ``out``; return its MD5 hex digest, the bytes received and the announced length."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            header = response.headers.get("Content-Length")
            announced = int(header) if header is not None and header.strip().isdigit() else None
            digest = hashlib.md5(usedforsecurity=False)
            received = 0
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
    except urllib.error.HTTPError as exc:
        exc.close()  # the error carries an open response; closing it avoids a ResourceWarning
        raise DataError(f"{url}: HTTP error {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise DataError(f"{url}: download failed ({type(exc).__name__}: {exc})") from exc
    return digest.hexdigest(), received, announced


def _download_one(url: str, dest: Path, md5: str, timeout: float) -> None:
    """Download ``url`` to ``dest`` atomically (verified in a temp file beside it, then renamed; nothing partial is
    left behind, whatever goes wrong)."""

    def fetch(temp: str) -> None:
        with open(temp, "wb") as out:
            digest, received, announced = _fetch(url, out, timeout)
        if announced is not None and received != announced:
            raise DataError(f"{url}: truncated download of {dest.name} ({received} of {announced} bytes)")
        if digest != md5.lower():
            raise DataError(f"{url}: checksum mismatch for {dest.name} (md5 {digest}, expected {md5})")

    atomic_write(dest, fetch, ".part")


def _download(data_dir: Path, mirrors: Sequence[str], checksums: Mapping[str, str], timeout: float) -> list[Path]:
    """Make sure the four files are in ``data_dir``, downloading the missing .gz files from the first good mirror."""
    if not mirrors:
        raise DataError("no download mirrors given")
    created = not data_dir.exists()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create data directory {data_dir}: {exc.strerror or exc}") from exc
    try:
        return _download_missing(data_dir, mirrors, checksums, timeout)
    except BaseException:
        if created and not any(data_dir.iterdir()):
            data_dir.rmdir()  # a failed first download leaves no empty folder behind
        raise


def _download_missing(
    data_dir: Path, mirrors: Sequence[str], checksums: Mapping[str, str], timeout: float
) -> list[Path]:
    files = []
    for stem in _IDX_FILES:
        # Keep files an earlier, interrupted run already completed; they were verified before being renamed.
        present = [p for p in (data_dir / stem, data_dir / f"{stem}.gz") if p.is_file()]
        if present:
            files.append(present[0])
            continue
        name = f"{stem}.gz"
        if name not in checksums:
            raise DataError(f"no known checksum for {name}; cannot verify a download of it")
        dest = data_dir / name
        failures = []
        for mirror in mirrors:
            url = (mirror if mirror.endswith("/") else mirror + "/") + name
            try:
                _download_one(url, dest, checksums[name], timeout)
                break
            except DataError as exc:
                failures.append(str(exc))
        else:
            raise DataError(f"could not download {name} from any mirror: " + "; ".join(failures))
        files.append(dest)
    return files


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    kind: str = "mnist",
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """MNIST or Fashion-MNIST as 784 features in [0, 1], from local IDX files or downloaded into ``data_dir``.

    Files are looked for in ``data_dir``, then ``data_dir/MNIST/raw`` (or ``FashionMNIST/raw``, torchvision's
    layout), then, for Fashion-MNIST, :data:`FASHION_MNIST_SYSTEM_DIR`. If none holds all four files and
    ``download`` is true, the missing ``.gz`` files are fetched into ``data_dir`` from ``mirrors`` in order and
    checked against ``checksums`` (file name -> MD5), which default to the published values.
    """
    if kind not in _TORCHVISION_DIRS:
        raise SteplrValueError(f"unknown kind {kind!r}; choose 'mnist' or 'fashion-mnist'")
    root = None if data_dir is None else Path(data_dir)
    searched = _search_dirs(kind, root)
    for directory in searched:
        files = _find_idx_files(directory)
        if files is not None:
            return _load_idx_set(kind, files)
    if root is None or not download:
        looked_for = ", ".join(f"{stem}[.gz]" for stem in _IDX_FILES)
        where = ", ".join(str(d) for d in searched) or "(no directory: none was given)"
        if root is None:
            hint = "no data directory was given; pass --data-dir DIR to use the files in DIR or download them there"
        else:
            hint = "downloading is disabled; allow it, or pass --data-dir pointing at a directory with the files"
        raise DataError(f"{kind} files not found: looked for {looked_for} in {where}; {hint}")
    if isinstance(mirrors, str):
        mirrors = [mirrors]  # a lone URL would otherwise be iterated character by character
    files = _download(
        root,
        DEFAULT_MIRRORS[kind] if mirrors is None else mirrors,
        DEFAULT_CHECKSUMS[kind] if checksums is None else checksums,
        timeout,
    )
    return _load_idx_set(kind, files)


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, seed: int = 0, download: bool = True
) -> Dataset:
    """Load a dataset by name: one of :data:`DATASET_NAMES` (``seed`` affects the digits split only)."""
    key = name.strip().lower()
    if key == "qwerty":
        return load_qwerty()
    if key == "digits":
        return load_digits(seed=seed)
    if key in ("mnist", "fashion-mnist"):
        return load_mnist(data_dir, kind=key, download=download)
    if key in SUBSETS:
        source, size = SUBSETS[key]
        return _subset(load_dataset(source, data_dir, seed, download), key, size)
    raise SteplrValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")


def _subset(data: Dataset, name: str, size: int) -> Dataset:
    """``size`` training examples of ``data``, stratified by class and drawn with seed 0, in their original order."""
    from sklearn.model_selection import train_test_split

    labels = data.y_train.numpy()
    keep, _ = train_test_split(np.arange(labels.size), train_size=size, random_state=0, stratify=labels)
    index = torch.from_numpy(np.sort(keep))
    return Dataset(name, data.x_train[index], data.y_train[index], data.x_test, data.y_test, data.num_classes)
