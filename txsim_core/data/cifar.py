"""CIFAR-10 and CIFAR-100 from their python-pickle folders, unpickled under a whitelist.

The CIFAR "python version" files are pickles (written by Python 2's cPickle) of dicts holding a
numpy array and lists. Unpickling runs whatever callables a file names, so a tampered file
could execute code; :class:`CifarUnpickler` resolves only the few numpy functions that rebuild
arrays and refuses everything else.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from txsim_core.data._common import Request, Source, array_source
from txsim_core.errors import ConfigError

ALLOWED_GLOBALS = frozenset(
    {
        # numpy arrays: protocols 2-4 (numpy < 2 and >= 2 spellings)
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # numpy scalars, and arrays pickled with protocol 5
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        # bytes as Python 3 writes them with protocol 2
        ("_codecs", "encode"),
        ("__builtin__", "bytes"),
        ("builtins", "bytes"),
    }
)
"""The (module, name) globals a CIFAR pickle may refer to; they only rebuild arrays and bytes."""

CIFAR10_LAYOUT = (
    "  <path>/cifar-10-batches-py/  (or <path> itself)\n"
    "    batches.meta               dict: b'label_names' (10 names)\n"
    "    data_batch_1 ... data_batch_5\n"
    "                               dicts: b'data' uint8 (10000, 3072) = R, G, B planes of\n"
    "                               32x32 row-major; b'labels' list of ints in 0..9\n"
    "    test_batch                 same, the 10000 test images"
)
"""The expected file tree of CIFAR-10."""

CIFAR100_LAYOUT = (
    "  <path>/cifar-100-python/     (or <path> itself)\n"
    "    meta                       dict: b'fine_label_names' (100), b'coarse_label_names' (20)\n"
    "    train                      dict: b'data' uint8 (50000, 3072) = R, G, B planes of\n"
    "                               32x32 row-major; b'fine_labels', b'coarse_labels'\n"
    "    test                       same, the 10000 test images"
)
"""The expected file tree of CIFAR-100."""


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and refuses anything else.

    Args:
        file: the open binary file.
        request: the request, for error messages.
        path: the file's path, for error messages.
    """

    def __init__(self, file: Any, request: Request, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._request = request
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        """Return the allowed global ``module.name``; raise :class:`ConfigError` otherwise."""
        if (module, name) not in ALLOWED_GLOBALS:
            raise self._request.error(
                f"refused to unpickle {self._path.name}: it asks for {module}.{name}, which a "
                f"CIFAR file never needs (only numpy array reconstruction is allowed). The file "
                f"is corrupt or was tampered with; do not load it with plain pickle.",
                self._path,
            )
        modules = [module]
        if module.startswith("numpy.core."):  # numpy >= 2 renamed it; avoid the deprecated alias
            modules = ["numpy._core." + module.removeprefix("numpy.core."), module]
        elif module.startswith("numpy._core."):  # written by numpy >= 2, maybe read by numpy 1
            modules = [module, "numpy.core." + module.removeprefix("numpy._core.")]
        elif module == "__builtin__":
            modules = ["builtins"]
        for candidate in modules:
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
        raise self._request.error(f"cannot resolve {module}.{name} in {self._path.name}.")


def load_pickle(request: Request, path: Path) -> dict[bytes, Any]:
    """Unpickle one CIFAR file with :class:`CifarUnpickler` and return its dict.

    Args:
        request: the request, for error messages.
        path: the file.
    """
    if not path.is_file():
        raise request.error(f"missing file {path.name} in '{path.parent}'.", path.parent)
    try:
        with path.open("rb") as stream:
            loaded = CifarUnpickler(stream, request, path).load()
    except ConfigError:
        raise
    except Exception as exc:  # any decoding failure of an untrusted file is a bad file
        raise request.error(
            f"cannot unpickle {path.name} ({type(exc).__name__}: {exc}); the file is not a "
            f"CIFAR python pickle or is truncated.",
            path,
        ) from exc
    if not isinstance(loaded, dict):
        raise request.error(
            f"Expected {path.name} to hold a dict, but got {type(loaded).__name__}.", path
        )
    return loaded


def _field(request: Request, batch: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in batch:
        keys = ", ".join(repr(k) for k in batch)
        raise request.error(f"Expected key {key!r} in {path.name}, but got keys {keys}.", path)
    return batch[key]


def _images_labels(request: Request, path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = load_pickle(request, path)
    data = _field(request, batch, b"data", path)
    labels = np.asarray(_field(request, batch, label_key, path))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        got = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise request.error(
            f"Expected b'data' in {path.name} to be a uint8 array (N, 3072), but got {got}.", path
        )
    if data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise request.error(
            f"Expected b'data' of shape (N, 3072) and N labels in {path.name}, but got "
            f"{data.shape} and {len(labels)} labels.",
            path,
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise request.error(
            f"Expected {label_key!r} in {path.name} to be a list of ints, but got "
            f"{labels.dtype} values of shape {labels.shape}.",
            path,
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _names(request: Request, path: Path, key: bytes, count: int) -> tuple[str, ...]:
    names = _field(request, load_pickle(request, path), key, path)
    if not isinstance(names, (list, tuple)) or len(names) != count:
        raise request.error(
            f"Expected {key!r} in {path.name} to list {count} class names, but got {names!r:.200}.",
            path,
        )
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def load_cifar10(request: Request) -> Source:
    """Load CIFAR-10 (50,000 training and 10,000 test 3x32x32 images, 10 classes).

    Args:
        request: the request; its path is ``cifar-10-batches-py`` or the folder holding it.
    """
    root = request.find_root(("", "cifar-10-batches-py"), ("data_batch_1", "test_batch"))
    classes = _names(request, root / "batches.meta", b"label_names", 10)
    parts = [_images_labels(request, root / f"data_batch_{i}", b"labels") for i in range(1, 6)]
    train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    test = _images_labels(request, root / "test_batch", b"labels")
    return array_source(request, classes, train, test, origin=str(root))


def load_cifar100(request: Request) -> Source:
    """Load CIFAR-100 (50,000 training and 10,000 test 3x32x32 images, 100 or 20 classes).

    Args:
        request: the request; its path is ``cifar-100-python`` or the folder holding it. Option
            ``label_mode``: ``"fine"`` (100 classes, default) or ``"coarse"`` (20 superclasses).
    """
    root = request.find_root(("", "cifar-100-python"), ("train", "meta"))
    mode = request.options["label_mode"]
    count = 100 if mode == "fine" else 20
    classes = _names(request, root / "meta", f"{mode}_label_names".encode(), count)
    label_key = f"{mode}_labels".encode()
    train = _images_labels(request, root / "train", label_key)
    test = _images_labels(request, root / "test", label_key)
    return array_source(request, classes, train, test, origin=str(root))
