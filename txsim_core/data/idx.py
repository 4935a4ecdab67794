"""MNIST and Fashion-MNIST from their IDX files (optionally gzipped)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from txsim_core.data._common import Request, Source, array_source

IDX_UBYTE = 0x08
"""The IDX type code of unsigned bytes, the only one MNIST-style files use."""

MNIST_CLASSES = tuple(str(d) for d in range(10))
"""MNIST's class names: the digits."""

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST's class names, in label order (from the dataset's README)."""

FILES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
"""The four files of an MNIST-style dataset, each under its usual name and a common variant."""


def mnist_layout(torchvision_folder: str) -> str:
    """The expected file tree of an MNIST-style dataset.

    Args:
        torchvision_folder: the folder name torchvision downloads it into (``MNIST``).
    """
    return (
        "  <path>/                      (or <path>/raw/, or <path>/"
        f"{torchvision_folder}/raw/)\n"
        "    train-images-idx3-ubyte    training images, IDX magic 0x00000803 (N, 28, 28)\n"
        "    train-labels-idx1-ubyte    training labels, IDX magic 0x00000801 (N,)\n"
        "    t10k-images-idx3-ubyte     test images\n"
        "    t10k-labels-idx1-ubyte     test labels\n"
        "  each file may be gzipped (name + .gz); 'train-images.idx3-ubyte' spellings also work"
    )


def read_idx(request: Request, path: Path, ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes, checking its magic number and size.

    The IDX format: 2 zero bytes, a type code (0x08 for unsigned bytes), the number of
    dimensions, each dimension as a big-endian uint32, then the values in row-major order.

    Args:
        request: the request, for error messages.
        path: the file; gzip-decompressed when its name ends in ``.gz``.
        ndim: the number of dimensions expected (3 for images, 1 for labels).

    Returns:
        A read-only uint8 array of the file's shape.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                raw = stream.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise request.error(f"cannot read {path.name}: {exc}.", path) from exc
    expected_magic = (IDX_UBYTE << 8) | ndim
    if len(raw) < 4:
        raise request.error(
            f"Expected an IDX file of at least 4 bytes, but got {len(raw)} bytes in {path.name}.",
            path,
        )
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise request.error(
            f"Expected IDX magic number 0x{expected_magic:08X} (unsigned bytes, {ndim} "
            f"dimension{'s' if ndim > 1 else ''}) at the start of {path.name}, but got "
            f"0x{magic:08X}; the file is not an MNIST-style {ndim}-D IDX file or is corrupt.",
            path,
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise request.error(
            f"Expected a {header}-byte IDX header in {path.name}, but got only {len(raw)} bytes "
            f"(truncated file).",
            path,
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) != header + size:
        state = "truncated file" if len(raw) < header + size else "trailing bytes"
        raise request.error(
            f"Expected {header + size} bytes in {path.name} (header {header} + "
            f"{' x '.join(str(d) for d in dims)} values), but got {len(raw)} ({state}).",
            path,
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(request: Request, root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise request.error(f"missing file {names[0]} (or {names[0]}.gz) in '{root}'.", root)


def load_idx_dataset(request: Request, torchvision_folder: str, classes: tuple[str, ...]) -> Source:
    """Load an MNIST-style dataset (four IDX files) from the request's path.

    Args:
        request: the request; its path holds the files (or ``raw/`` or
            ``<torchvision_folder>/raw/`` under it, torchvision's layout).
        torchvision_folder: the folder name torchvision uses (``MNIST``, ``FashionMNIST``).
        classes: the class names in label order.
    """
    markers = tuple(f"{n}{gz}" for n in FILES["train_images"] for gz in ("", ".gz"))
    root = request.find_root(("", "raw", f"{torchvision_folder}/raw"), markers)
    paths = {key: _find(request, root, names) for key, names in FILES.items()}
    arrays = {}
    for key, path in paths.items():
        arrays[key] = read_idx(request, path, 3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise request.error(
                f"Expected as many labels as images in the {split} files, but got "
                f"{len(images)} images ({paths[f'{split}_images'].name}) and {len(labels)} "
                f"labels ({paths[f'{split}_labels'].name}).",
                root,
            )
    return array_source(
        request,
        classes,
        (arrays["train_images"][:, None], arrays["train_labels"].astype(np.int64)),
        (arrays["test_images"][:, None], arrays["test_labels"].astype(np.int64)),
        origin=str(root),
    )
