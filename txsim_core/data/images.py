"""Datasets stored as image files: Tiny-ImageNet and any class-per-folder tree.

Files are listed first; the seeded shuffle and the limits pick which ones to keep, and only those
are decoded (with Pillow, in a few threads, straight into one preallocated uint8 array).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from txsim_core.data._common import Request, Source, optional_import
from txsim_core.errors import ConfigError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
"""File name endings (case-insensitive) that the image-folder dataset reads as images."""

GRAY_MODES = frozenset({"1", "L", "LA", "La"})
"""Pillow modes of single-channel images (``color="auto"`` keeps such datasets gray)."""

DEEP_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes of 16-bit and 32-bit images, refused: converting them to 8 bits would clip."""

TINY_IMAGENET_LAYOUT = (
    "  <path>/tiny-imagenet-200/    (or <path> itself)\n"
    "    wnids.txt                  one WordNet id per line; line k is class k\n"
    "    train/<wnid>/images/*.JPEG  the 64x64 training images of class <wnid>\n"
    "    val/images/*.JPEG          the validation images, used as the test set\n"
    "    val/val_annotations.txt    '<file name>\\t<wnid>\\t...' per validation image"
)
"""The expected file tree of Tiny-ImageNet."""

IMAGE_FOLDER_LAYOUT = (
    "  <path>/\n"
    "    train/<class>/<image>      one folder per class; label k = k-th name in sorted order\n"
    "    test/<class>/<image>       (or val/); classes must also exist in train/\n"
    "  or, split by test_fraction:\n"
    "  <path>/<class>/<image>\n"
    "  images: .png .jpg .jpeg .bmp .gif .tif .tiff .webp .ppm .pgm .pbm, all the same size\n"
    "  unless image_size is given"
)
"""The expected file tree of the image-folder dataset."""


def _parallel(count: int, work: Callable[[int, int], None]) -> None:
    """Run ``work(lo, hi)`` over contiguous chunks of range(count) in a few threads.

    Pillow releases the GIL while decoding, so threads give a real speed-up.
    """
    workers = max(1, min(8, os.cpu_count() or 1, count // 64))
    if workers == 1:
        work(0, count)
        return
    bounds = np.linspace(0, count, workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]
        for future in futures:
            future.result()


def _open_error(request: Request, path: Path, exc: Exception) -> ConfigError:
    return request.error(f"cannot read image {path.name} ({type(exc).__name__}: {exc}).", path)


def image_modes(request: Request, files: Sequence[Path]) -> set[str]:
    """The set of Pillow modes of ``files``, read from their headers only.

    Args:
        request: the request, for error messages.
        files: the image files.
    """
    image_mod: Any = optional_import("PIL.Image", request.name)
    modes: list[set[str]] = []

    def work(lo: int, hi: int) -> None:
        found: set[str] = set()
        for path in files[lo:hi]:
            try:
                with image_mod.open(path) as image:
                    found.add(image.mode)
            except (OSError, ValueError, SyntaxError, image_mod.DecompressionBombError) as exc:
                raise _open_error(request, path, exc) from exc
        modes.append(found)

    _parallel(len(files), work)
    return set().union(*modes)


def image_size_of(request: Request, path: Path) -> tuple[int, int]:
    """The (height, width) of one image file, from its header.

    Args:
        request: the request, for error messages.
        path: the image file.
    """
    image_mod: Any = optional_import("PIL.Image", request.name)
    try:
        with image_mod.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError, image_mod.DecompressionBombError) as exc:
        raise _open_error(request, path, exc) from exc
    return int(height), int(width)


def decode_images(
    request: Request,
    files: Sequence[Path],
    *,
    mode: str,
    size: tuple[int, int],
    resize: bool,
    reference: Path | None = None,
) -> np.ndarray:
    """Decode image files into one uint8 array (N, C, H, W).

    Args:
        request: the request, for error messages.
        files: the image files, in the order of the result.
        mode: ``"L"`` (1 channel, ITU-R 601-2 luma for color files) or ``"RGB"`` (3 channels;
            gray files are replicated, alpha is dropped). 16- and 32-bit files are refused.
        size: the (height, width) of the result.
        resize: resize every image to ``size`` with Pillow's bilinear filter (antialiased when
            shrinking); when False an image of another size is an error.
        reference: the file whose size defined ``size``, named in the error message.
    """
    image_mod: Any = optional_import("PIL.Image", request.name)
    height, width = size
    channels = 1 if mode == "L" else 3
    out = np.empty((len(files), channels, height, width), dtype=np.uint8)

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            path = files[i]
            try:
                with image_mod.open(path) as image:
                    if image.mode in DEEP_MODES:
                        raise request.error(
                            f"Expected 8-bit images, but got Pillow mode {image.mode!r} in "
                            f"{path.name}; convert the images to 8-bit (e.g. PNG mode L or RGB).",
                            path,
                        )
                    if image.size != (width, height):
                        if not resize:
                            origin = f" (the size of {reference.name})" if reference else ""
                            raise request.error(
                                f"Expected every image to be {width}x{height} pixels (width x "
                                f"height){origin}, but got {image.size[0]}x{image.size[1]} in "
                                f"{path.name}. Pass image_size=(height, width) to resize.",
                                path,
                            )
                        image.draft(None, (2 * width, 2 * height))  # JPEG: decode reduced
                        pixels = image.convert(mode).resize(
                            (width, height), image_mod.Resampling.BILINEAR
                        )
                    else:
                        pixels = image if image.mode == mode else image.convert(mode)
                    array = np.asarray(pixels)
            except ConfigError:
                raise
            except (OSError, ValueError, SyntaxError, image_mod.DecompressionBombError) as exc:
                raise _open_error(request, path, exc) from exc
            out[i] = array[None] if channels == 1 else array.transpose(2, 0, 1)

    _parallel(len(files), work)
    return out


def _files_source(
    request: Request,
    classes: tuple[str, ...],
    train: tuple[list[Path], np.ndarray],
    test: tuple[list[Path], np.ndarray] | None,
    *,
    color: str,
    size: tuple[int, int] | None,
    resize: bool,
    origin: str,
) -> Source:
    """A :class:`Source` that decodes only the files the shuffle and limits keep.

    Args:
        request: the request.
        classes: the class names.
        train: (files, labels) of the training pool.
        test: (files, labels) of the test set, or None to split the pool by test_fraction.
        color: ``"rgb"``, ``"gray"`` or ``"auto"`` (gray when every kept file is gray).
        size: the (height, width) every image has or is resized to; None: the size of the
            first kept training image.
        resize: resize images of another size instead of refusing them.
        origin: where the files are.
    """
    train_files, train_labels = train
    test_files, test_labels = test if test is not None else train

    def take(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chosen_train = [train_files[i] for i in train_idx]
        chosen_test = [test_files[i] for i in test_idx]
        if color == "auto":
            gray = image_modes(request, chosen_train + chosen_test) <= GRAY_MODES
            mode = "L" if gray else "RGB"
        else:
            mode = "L" if color == "gray" else "RGB"
        reference = None if size is not None else chosen_train[0]
        shape = size if size is not None else image_size_of(request, chosen_train[0])

        def decode(files: list[Path]) -> np.ndarray:
            return decode_images(
                request, files, mode=mode, size=shape, resize=resize, reference=reference
            )

        return decode(chosen_train), decode(chosen_test)

    return Source(
        classes=classes,
        train_labels=train_labels,
        test_labels=None if test is None else test_labels,
        take=take,
        pixel_scale=255.0,
        origin=origin,
    )


def _read_lines(request: Request, path: Path) -> list[str]:
    if not path.is_file():
        raise request.error(f"missing file {path.name} in '{path.parent}'.", path.parent)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise request.error(f"cannot read {path.name}: {exc}.", path) from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        entry
        for entry in folder.iterdir()
        if entry.suffix.lower() in IMAGE_SUFFIXES
        and not entry.name.startswith(".")
        and entry.is_file()
    )


def load_tiny_imagenet(request: Request) -> Source:
    """Load Tiny-ImageNet-200 (100,000 training, 10,000 validation 3x64x64 images).

    The validation set (``val/``, labelled by ``val_annotations.txt``) is the test set; the
    unlabelled ``test/`` folder is not used. Label k is the k-th line of ``wnids.txt``.

    Args:
        request: the request; its path is ``tiny-imagenet-200`` or the folder holding it.
            Option ``image_size``: resize to (height, width) instead of keeping 64x64.
    """
    root = request.find_root(("", "tiny-imagenet-200"), ("wnids.txt",))
    wnids = tuple(line.split()[0] for line in _read_lines(request, root / "wnids.txt"))
    if not wnids or len(set(wnids)) != len(wnids):
        raise request.error(
            f"Expected wnids.txt to list distinct WordNet ids, but got {len(wnids)} lines with "
            f"{len(set(wnids))} distinct ids.",
            root / "wnids.txt",
        )
    train_files: list[Path] = []
    train_labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise request.error(f"missing folder train/{wnid}/images for class {wnid}.", folder)
        files = _list_images(folder)
        if not files:
            raise request.error(f"Expected images in train/{wnid}/images, but got none.", folder)
        train_files += files
        train_labels += [label] * len(files)
    index = {wnid: k for k, wnid in enumerate(wnids)}
    annotations = root / "val" / "val_annotations.txt"
    test_files: list[Path] = []
    test_labels: list[int] = []
    for number, line in enumerate(_read_lines(request, annotations), start=1):
        fields = line.split()
        if len(fields) < 2 or fields[1] not in index:
            raise request.error(
                f"Expected line {number} of val_annotations.txt to be '<file>\\t<wnid>\\t...' "
                f"with a wnid of wnids.txt, but got {line!r}.",
                annotations,
            )
        test_files.append(root / "val" / "images" / fields[0])
        test_labels.append(index[fields[1]])
    missing = [f for f in test_files if not f.is_file()]
    if missing:
        raise request.error(
            f"missing {len(missing)} validation image(s) listed in val_annotations.txt, "
            f"e.g. val/images/{missing[0].name}.",
            missing[0].parent,
        )
    size = request.options.get("image_size")
    return _files_source(
        request,
        wnids,
        (train_files, np.asarray(train_labels, dtype=np.int64)),
        (test_files, np.asarray(test_labels, dtype=np.int64)),
        color="rgb",
        size=size if size is not None else (64, 64),
        resize=size is not None,
        origin=str(root),
    )


def _class_tree(
    request: Request, folder: Path, classes: tuple[str, ...] | None
) -> tuple[tuple[str, ...], list[Path], np.ndarray]:
    """The images of a class-per-folder tree: (classes, files, labels).

    Args:
        request: the request, for error messages.
        folder: holds one subfolder per class.
        classes: the class names to label with (a test tree's classes must be among them), or
            None to take this tree's sorted subfolder names.
    """
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise request.error(f"Expected one subfolder per class in '{folder}', but got none.")
    if classes is None:
        classes = tuple(found)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise request.error(
            f"Expected the classes of '{folder.name}/' to be among those of train/ "
            f"({', '.join(classes)}), but got {', '.join(unknown)}.",
            folder,
        )
    index = {name: k for k, name in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for name in found:
        images = _list_images(folder / name)
        if not images:
            raise request.error(
                f"Expected image files in class folder '{name}', but got none.", folder / name
            )
        files += images
        labels += [index[name]] * len(images)
    return classes, files, np.asarray(labels, dtype=np.int64)


def load_image_folder(request: Request) -> Source:
    """Load a class-per-folder tree of images (``train/`` and ``test/`` or ``val/``, or flat).

    Labels are the sorted class folder names of ``train/`` (of the path itself when there is no
    ``train/``: the images are then split by ``test_fraction``, stratified per class).

    Args:
        request: the request. Options: ``image_size`` (None, an int or (height, width): resize
            every image; None requires equal sizes) and ``color`` (``"auto"``: gray when every
            image is single-channel, else RGB; ``"rgb"``; ``"gray"``).
    """
    root = request.require_path()
    train_dir = root / "train"
    test: tuple[list[Path], np.ndarray] | None = None
    if train_dir.is_dir():
        test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
        if test_dir is None:
            raise request.error("found train/ but no test/ or val/ folder next to it.")
        classes, train_files, train_labels = _class_tree(request, train_dir, None)
        _, test_files, test_labels = _class_tree(request, test_dir, classes)
        test = (test_files, test_labels)
    else:
        classes, train_files, train_labels = _class_tree(request, root, None)
    size = request.options.get("image_size")
    return _files_source(
        request,
        classes,
        (train_files, train_labels),
        test,
        color=request.options["color"],
        size=size,
        resize=size is not None,
        origin=str(root),
    )
