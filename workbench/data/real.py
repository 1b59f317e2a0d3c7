"""Real image datasets, read from local files into ``ImageData`` (uint8, N x C x H x W).

Every loader has the signature ``loader(root=None, download=False, image_size=None)`` so that
``REAL_DATASETS[name](**config)`` works for all of them:

* ``root`` -- where the files are (str or Path). ``None`` searches the usual places: ``data/``
  relative to the working directory and, for FashionMNIST, Debian's package directory.
* ``download`` -- ask torchvision to fetch the files when they are not found locally. This needs
  internet; offline it fails with a ``DataError`` that lists the offline alternatives. Loaders
  with nothing to download (``digits``, ``image_folder``) accept and ignore it.
* ``image_size`` -- resize every image to ``image_size x image_size`` (antialiased bilinear);
  ``None`` keeps the native size.

Missing, unreadable or corrupt files raise ``DataError`` naming the path(s) tried and how to get
the data. Nothing falls back silently to another dataset, and nothing touches the network unless
``download`` is true (then with a socket timeout, so a dead network fails instead of hanging).

The MNIST family and CIFAR are read by our own readers (``idx.py``, ``cifar.py``): they accept the
files wherever they are and whatever their size, and CIFAR's pickles are unpickled without
allowing code execution. STL-10 and SVHN come in formats (column-major binaries, MATLAB files)
that torchvision already reads well, so its classes are used and only their arrays are taken.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .base import ImageData, ImageSet
from .cifar import read_class_names, read_split
from .idx import read_idx

Root = Union[str, Path, None]
Loader = Callable[..., ImageData]

DEFAULT_ROOT = Path("data")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_TIMEOUT_S = 60.0
DIGIT_CLASSES = tuple(str(i) for i in range(10))


# ---- shared helpers --------------------------------------------------------------------------


def _base(root: Root) -> Path:
    """The given root, or ``data/`` under the working directory (absolute, for clear messages)."""
    return Path(root).expanduser() if root is not None else Path.cwd() / DEFAULT_ROOT


def _roots(root: Root, defaults: Sequence[Path]) -> list[Path]:
    """The directories to search: the given root only, or the defaults when it is None."""
    return [_base(root)] if root is not None else [Path.cwd() / d for d in defaults]


def _obtain(offline: Sequence[str], online: str) -> str:
    """The "how to get the data" sentence: every offline way, then downloading."""
    return "; or ".join([*offline, online])


def _check_image_size(image_size: int | None) -> None:
    """Checked before any file is read, so that a bad configuration fails at once."""
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise ConfigError("data.image_size", image_size, "a positive integer, or null for native")


def resize_images(images: torch.Tensor, image_size: int | None, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 N x C x H x W images to a square side, in chunks to bound float memory."""
    _check_image_size(image_size)
    if image_size is None or tuple(images.shape[-2:]) == (image_size, image_size):
        return images
    out = torch.empty(
        (images.shape[0], images.shape[1], image_size, image_size), dtype=torch.uint8
    )
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].float()
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True)
        out[start : start + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _image_set(images: np.ndarray | torch.Tensor, labels: Any, image_size: int | None) -> ImageSet:
    """Wrap arrays as an ``ImageSet`` with uint8 images and int64 labels."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return ImageSet(resize_images(images, image_size), labels)


@contextmanager
def _network_timeout(seconds: float) -> Iterator[None]:
    """torchvision opens URLs without a timeout; a default socket timeout makes hangs errors."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _torchvision_download(
    dataset: str, root: Path, offline: Sequence[str], **kwargs: Any
) -> Any:
    """Instantiate ``torchvision.datasets.<dataset>(root, download=True, **kwargs)``.

    Any failure (no internet, a bad checksum, a full disk) becomes a ``DataError`` that says
    downloading failed and how to get the files without a network.
    """
    import torchvision.datasets

    try:
        with _network_timeout(DOWNLOAD_TIMEOUT_S):
            return getattr(torchvision.datasets, dataset)(str(root), download=True, **kwargs)
    except Exception as e:
        raise DataError(
            f"downloading {dataset} into {root} failed ({type(e).__name__}: {e}). "
            f"Offline alternatives: {'; or '.join(offline)}"
        ) from e


# ---- digits ----------------------------------------------------------------------------------


def load_digits(
    root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """scikit-learn's bundled 8x8 digits: real handwriting that needs no file and no network.

    Values 0..16 are scaled to 0..255 so that the images look like every other dataset's. There is
    no official test split (``test=None``); ``root`` and ``download`` are ignored.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    train = _image_set(pixels[:, None], bunch.target, image_size)
    return ImageData("digits", train, None, DIGIT_CLASSES)


# ---- MNIST and FashionMNIST (IDX files) ------------------------------------------------------

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class IdxDataset:
    """What differs between MNIST and FashionMNIST: names, classes, where to look, how to get."""

    name: str
    torchvision_name: str  # also the folder torchvision uses: <root>/<torchvision_name>/raw
    classes: tuple[str, ...]
    default_roots: tuple[Path, ...]
    package_help: str  # how to get it from the system's package manager, or ""

    def candidate_dirs(self, root: Root) -> list[Path]:
        """Each root as given, then in torchvision's layout under it."""
        dirs: list[Path] = []
        for r in _roots(root, self.default_roots):
            dirs += [r, r / self.torchvision_name / "raw"]
        return dirs

    def offline_help(self, root: Root) -> list[str]:
        files = ", ".join(f"{f}.gz" for f in IDX_FILES.values())
        copy = f"copy the four files ({files}, gzipped or not) into {_base(root)}"
        return [self.package_help, copy] if self.package_help else [copy]

    def online_help(self, root: Root) -> str:
        return (
            f"set `download: true` on a machine with internet (torchvision's "
            f"datasets.{self.torchvision_name}(root, download=True) fetches it into "
            f"{_base(root) / self.torchvision_name / 'raw'})"
        )


MNIST = IdxDataset(
    name="mnist",
    torchvision_name="MNIST",
    classes=DIGIT_CLASSES,
    default_roots=(DEFAULT_ROOT,),
    package_help="",
)
FASHION_MNIST = IdxDataset(
    name="fashion_mnist",
    torchvision_name="FashionMNIST",
    classes=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),  # fmt: skip
    default_roots=(DEFAULT_ROOT / "fashion-mnist", DEFAULT_ROOT, DEBIAN_FASHION_MNIST),
    package_help=(
        "`apt-get install dataset-fashion-mnist` (Debian / Ubuntu; installs the files under "
        f"{DEBIAN_FASHION_MNIST}, searched when root is not set)"
    ),
)


def _idx_files_in(directory: Path) -> dict[str, Path] | None:
    """The four IDX files in ``directory`` (uncompressed preferred), or None if any is missing."""
    found: dict[str, Path] = {}
    for key, stem in IDX_FILES.items():
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def find_idx_files(spec: IdxDataset, root: Root) -> tuple[dict[str, Path] | None, list[Path]]:
    """The first candidate directory holding all four files, and every directory tried."""
    tried = spec.candidate_dirs(root)
    for directory in tried:
        files = _idx_files_in(directory)
        if files is not None:
            return files, tried
    return None, tried


def _idx_split(
    images_path: Path, labels_path: Path, spec: IdxDataset, image_size: int | None
) -> ImageSet:
    """Read and cross-check one split's image and label files."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != torch.uint8 or images.ndim != 3:
        raise DataError(
            f"{images_path} is corrupt: expected uint8 images N x H x W, got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if labels.dtype != torch.uint8 or labels.shape != (images.shape[0],):
        raise DataError(
            f"{labels_path} does not match {images_path}: expected {images.shape[0]} uint8 "
            f"labels, got {labels.dtype} {tuple(labels.shape)}"
        )
    if labels.numel() and int(labels.max()) >= len(spec.classes):
        raise DataError(f"{labels_path} is corrupt: label {int(labels.max())} out of range")
    return _image_set(images.unsqueeze(1), labels, image_size)


def load_idx_dataset(
    spec: IdxDataset, root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """Find the IDX files (downloading them first if asked and absent) and read both splits."""
    _check_image_size(image_size)
    files, tried = find_idx_files(spec, root)
    if files is None and download:
        target = _base(root)
        _torchvision_download(spec.torchvision_name, target, spec.offline_help(root), train=True)
        files, tried = find_idx_files(spec, target)
    if files is None:
        listed = "\n  ".join(str(d) for d in tried)
        raise DataError(
            f"{spec.torchvision_name} not found: none of these directories holds all of "
            f"{', '.join(IDX_FILES.values())} (each optionally .gz):\n  {listed}\n"
            f"To obtain it: {_obtain(spec.offline_help(root), spec.online_help(root))}"
        )
    train = _idx_split(files["train_images"], files["train_labels"], spec, image_size)
    test = _idx_split(files["test_images"], files["test_labels"], spec, image_size)
    return ImageData(spec.name, train, test, spec.classes)


def load_mnist(
    root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """MNIST from IDX files in ``root`` or ``root/MNIST/raw`` (``data/`` when root is None)."""
    return load_idx_dataset(MNIST, root, download, image_size)


def load_fashion_mnist(
    root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """FashionMNIST from IDX files in ``root`` or ``root/FashionMNIST/raw``.

    With root None it searches ``data/fashion-mnist``, ``data/`` and Debian's
    ``/usr/share/datasets/fashion-mnist``, so ``apt-get install dataset-fashion-mnist`` is enough
    on a machine without internet.
    """
    return load_idx_dataset(FASHION_MNIST, root, download, image_size)


# ---- CIFAR-10 / CIFAR-100 (python pickle batches) --------------------------------------------


@dataclass(frozen=True)
class CifarDataset:
    """The file layout of one CIFAR variant."""

    name: str
    torchvision_name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    names_key: bytes
    label_key: bytes
    archive: str

    def offline_help(self, root: Root) -> list[str]:
        target = _base(root)
        return [
            f"extract {self.archive} (python version, from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html) into {target} so that "
            f"{target / self.folder / self.meta_file} exists"
        ]

    def online_help(self, root: Root) -> str:
        return (
            f"set `download: true` on a machine with internet (torchvision's "
            f"datasets.{self.torchvision_name}(root, download=True))"
        )


CIFAR10 = CifarDataset(
    name="cifar10",
    torchvision_name="CIFAR10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    names_key=b"label_names",
    label_key=b"labels",
    archive="cifar-10-python.tar.gz",
)
CIFAR100 = CifarDataset(
    name="cifar100",
    torchvision_name="CIFAR100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    names_key=b"fine_label_names",
    label_key=b"fine_labels",
    archive="cifar-100-python.tar.gz",
)


def find_cifar_dir(spec: CifarDataset, root: Root) -> tuple[Path | None, list[Path]]:
    """The batch directory: ``root/<folder>`` or ``root`` itself, whichever holds the meta file."""
    base = _base(root)
    tried = [base / spec.folder, base]
    for directory in tried:
        if (directory / spec.meta_file).is_file():
            return directory, tried
    return None, tried


def load_cifar_dataset(
    spec: CifarDataset, root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """Find the batch directory (downloading first if asked and absent) and read both splits."""
    _check_image_size(image_size)
    directory, tried = find_cifar_dir(spec, root)
    if directory is None and download:
        target = _base(root)
        _torchvision_download(spec.torchvision_name, target, spec.offline_help(root), train=True)
        directory, tried = find_cifar_dir(spec, target)
    if directory is None:
        listed = " or ".join(str(d / spec.meta_file) for d in tried)
        raise DataError(
            f"{spec.torchvision_name} not found: there is no {listed}. "
            f"To obtain it: {_obtain(spec.offline_help(root), spec.online_help(root))}"
        )
    needed = [directory / f for f in spec.train_files + spec.test_files]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DataError(
            f"{spec.torchvision_name} in {directory} is incomplete, missing: "
            f"{', '.join(missing)}. "
            f"To obtain it: {_obtain(spec.offline_help(root), spec.online_help(root))}"
        )
    classes = read_class_names(directory / spec.meta_file, spec.names_key)
    splits = []
    for names in (spec.train_files, spec.test_files):
        images, labels = read_split([directory / n for n in names], spec.label_key, len(classes))
        splits.append(_image_set(images, labels, image_size))
    return ImageData(spec.name, splits[0], splits[1], classes)


def load_cifar10(
    root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """CIFAR-10 from ``root/cifar-10-batches-py`` or from ``root`` being that directory."""
    return load_cifar_dataset(CIFAR10, root, download, image_size)


def load_cifar100(
    root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """CIFAR-100 (fine labels) from ``root/cifar-100-python`` or from ``root`` being that dir."""
    return load_cifar_dataset(CIFAR100, root, download, image_size)


# ---- STL-10 and SVHN (through torchvision) ---------------------------------------------------


def _torchvision_split(
    dataset: str, root: Path, split: str, download: bool, offline: Sequence[str]
) -> Any:
    """One split of a torchvision dataset, with its errors turned into ``DataError``."""
    import torchvision.datasets

    if download:
        return _torchvision_download(dataset, root, offline, split=split)
    try:
        return getattr(torchvision.datasets, dataset)(str(root), split=split, download=False)
    except RuntimeError as e:
        if "not found" not in str(e).lower():
            raise DataError(f"{dataset} in {root} could not be read: {e}") from e
        online = (
            f"set `download: true` on a machine with internet (torchvision's "
            f"datasets.{dataset}(root, split=..., download=True))"
        )
        raise DataError(
            f"{dataset} ({split} split) not found or corrupted in {root}. "
            f"To obtain it: {_obtain(offline, online)}"
        ) from e
    except ImportError as e:
        raise DataError(f"reading {dataset} needs a missing package: {e}") from e
    except Exception as e:  # a damaged file can fail while loading in many ways
        raise DataError(
            f"{dataset} in {root} is corrupt or unreadable: {type(e).__name__}: {e}"
        ) from e


def _torchvision_image_set(
    ds: Any, dataset: str, root: Path, image_size: int | None
) -> ImageSet:
    """Take the arrays torchvision holds (already N x C x H x W uint8), no per-sample access."""
    data, labels = np.asarray(ds.data), np.asarray(ds.labels)
    if data.dtype != np.uint8 or data.ndim != 4 or labels.shape != (data.shape[0],):
        raise DataError(
            f"{dataset} in {root} is corrupt: images {data.dtype} {data.shape}, "
            f"labels {labels.shape}"
        )
    return _image_set(data, labels.astype(np.int64), image_size)


STL10_CLASSES = (
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
)  # fmt: skip


def load_stl10(
    root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """STL-10's labelled train (5000) and test (8000) splits, 96x96; the unlabelled split is unused.

    Downloading fetches about 2.6 GB (the unlabelled images come in the same archive).
    """
    _check_image_size(image_size)
    base = _base(root)
    offline = [
        "extract stl10_binary.tar.gz (from https://cs.stanford.edu/~acoates/stl10/) into "
        f"{base} so that {base / 'stl10_binary' / 'train_X.bin'} exists"
    ]
    train = _torchvision_split("STL10", base, "train", download, offline)
    test = _torchvision_split("STL10", base, "test", download, offline)
    classes = tuple(getattr(train, "classes", ())) or STL10_CLASSES
    return ImageData(
        "stl10",
        _torchvision_image_set(train, "STL10", base, image_size),
        _torchvision_image_set(test, "STL10", base, image_size),
        classes,
    )


def load_svhn(
    root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """SVHN's train and test splits (32x32 house numbers; torchvision maps label 10 to 0).

    The "extra" split (531k images) is not loaded.
    """
    _check_image_size(image_size)
    base = _base(root)
    offline = [
        "place train_32x32.mat and test_32x32.mat (from http://ufldl.stanford.edu/housenumbers/) "
        f"in {base}"
    ]
    train = _torchvision_split("SVHN", base, "train", download, offline)
    test = _torchvision_split("SVHN", base, "test", download, offline)
    return ImageData(
        "svhn",
        _torchvision_image_set(train, "SVHN", base, image_size),
        _torchvision_image_set(test, "SVHN", base, image_size),
        DIGIT_CLASSES,
    )


# ---- any ImageFolder -------------------------------------------------------------------------


def _read_image(path: str, image_size: int | None) -> np.ndarray:
    """One image as H x W x 3 uint8 (RGB), resized to a square when asked."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            if image_size is not None and rgb.size != (image_size, image_size):
                rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as e:  # PIL's ways of saying "not an image"
        raise DataError(f"{path} cannot be read as an image: {e}") from e


def load_image_folder(
    root: Root = None, download: bool = False, image_size: int | None = None
) -> ImageData:
    """Images laid out as ``root/<class>/<image>``, held in memory like every other dataset.

    Without ``image_size`` all images must have the same size. Non-square images are resized to a
    square without cropping (so their aspect ratio changes). There is no official test split
    (``test=None``); ``download`` is ignored.
    """
    _check_image_size(image_size)
    if root is None:
        raise DataError(
            "image_folder needs `root`: a directory with one sub-folder of images per class"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(
            f"{path} is not a directory; image_folder expects {path}/<class name>/<image files>"
        )
    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(str(path))  # lists files and classes; loads no pixels
    except (FileNotFoundError, OSError) as e:
        raise DataError(
            f"{path} holds no images in class sub-folders ({e}); expected "
            f"{path}/<class name>/<image files> (.png, .jpg, ...)"
        ) from e
    first = _read_image(folder.samples[0][0], image_size)
    pixels = np.empty((len(folder.samples), *first.shape), dtype=np.uint8)
    pixels[0] = first
    for i, (file, _) in enumerate(folder.samples[1:], start=1):
        image = _read_image(file, image_size)
        if image.shape != first.shape:
            raise DataError(
                f"{file} is {image.shape[1]}x{image.shape[0]} but {folder.samples[0][0]} is "
                f"{first.shape[1]}x{first.shape[0]}; set `image_size` to resize them all"
            )
        pixels[i] = image
    labels = [target for _, target in folder.samples]
    train = _image_set(pixels.transpose(0, 3, 1, 2), labels, None)
    return ImageData("image_folder", train, None, tuple(folder.classes))


REAL_DATASETS: dict[str, Loader] = {
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "stl10": load_stl10,
    "svhn": load_svhn,
    "image_folder": load_image_folder,
}
"""Name -> loader; every loader takes ``(root=None, download=False, image_size=None)``."""
