"""CIFAR-10 / CIFAR-100 in their "python version" batch format, read without trusting pickle.

The official CIFAR archives are pickles. ``pickle.load`` on a file someone handed you can run
arbitrary code, so the batches are read with an unpickler that can build only the handful of numpy
objects a batch contains (arrays, dtypes, scalars) and refuses everything else with ``DataError``.
torchvision's CIFAR classes are not used for reading: they verify md5 sums of the full official
files (so a small or re-packed copy is rejected) and unpickle without restriction.

Layout (``encoding="bytes"``, so dict keys are bytes):
    cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch: {b"data": N x 3072 uint8,
        b"labels": [int]}; batches.meta: {b"label_names": [bytes]}
    cifar-100-python/train, test: {b"data", b"fine_labels", b"coarse_labels"};
        meta: {b"fine_label_names", b"coarse_label_names"}
A row of ``data`` is the 1024 red, then 1024 green, then 1024 blue values of a 32 x 32 image in
row-major order, so ``reshape(N, 3, 32, 32)`` gives channels-first images.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``codecs.encode`` as Python 3 pickles of bytes (protocol <= 2) use it, and nothing more."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _package in ("numpy.core", "numpy._core"):  # pickles name numpy 1's or numpy 2's module
    _ALLOWED_GLOBALS[(f"{_package}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_GLOBALS[(f"{_package}.multiarray", "scalar")] = _multiarray.scalar
    if hasattr(_numeric, "_frombuffer"):  # how protocol 5 rebuilds arrays
        _ALLOWED_GLOBALS[(f"{_package}.numeric", "_frombuffer")] = _numeric._frombuffer


CIFAR_SIDE = 32
CIFAR_ROW = 3 * CIFAR_SIDE * CIFAR_SIDE


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays, dtypes and scalars.

    Any other global (``os.system``, ``builtins.eval``, a class with a malicious ``__reduce__``)
    is refused before it is called, with a ``DataError`` naming the file.
    """

    def __init__(self, file: Any, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.path} is not a plain CIFAR batch: it references {module}.{name}, which is "
                "refused (only numpy arrays may be unpickled); do not use this file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.path} is not a plain CIFAR batch: it uses persistent ids")


def load_pickle(path: Path) -> Any:
    """Unpickle one CIFAR file with ``RestrictedUnpickler``; any failure is a ``DataError``."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, path).load()
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"{path} does not exist") from e
    except Exception as e:  # unpickling a damaged file can fail in many ways
        raise DataError(f"{path} is corrupt or truncated ({type(e).__name__}: {e}); delete it and obtain the "
                        "file again") from e


def _field(batch: Any, key: bytes, path: Path) -> Any:
    if not isinstance(batch, dict) or key not in batch:
        have = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path} is corrupt: expected a dict with key {key!r}, found {have}")
    return batch[key]


def read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 32 x 32 uint8) and labels (N int64) of one batch file, validated."""
    batch = load_pickle(path)
    data = _field(batch, b"data", path)
    labels = _field(batch, label_key, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{path} is corrupt: {b'data'!r} must be a 2-D uint8 array")
    if data.shape[1] != CIFAR_ROW:
        raise DataError(
            f"{path} is corrupt: rows of {b'data'!r} have {data.shape[1]} values, not {CIFAR_ROW}"
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f"{path} is corrupt: {label_key!r} is not a list of integers") from e
    if labels.shape != (data.shape[0],):
        raise DataError(
            f"{path} is corrupt: {data.shape[0]} images but {label_key!r} has shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{path} is corrupt: labels range {labels.min()}..{labels.max()}, "
            f"expected 0..{num_classes - 1}"
        )
    return data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE), labels


def read_class_names(path: Path, key: bytes) -> tuple[str, ...]:
    """Class names from a CIFAR meta file (stored as bytes)."""
    names = _field(load_pickle(path), key, path)
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{path} is corrupt: {key!r} must be a non-empty list of names")
    try:
        return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is corrupt: {key!r} holds undecodable names") from e


def read_split(
    paths: list[Path], label_key: bytes, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the batches that make up one split."""
    parts = [read_batch(p, label_key, num_classes) for p in paths]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return np.ascontiguousarray(images), labels
