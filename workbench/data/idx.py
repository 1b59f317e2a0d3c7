"""A reader for the IDX format of MNIST and FashionMNIST.

We read IDX files ourselves instead of going through torchvision's dataset classes because those
insist on their own directory layout and a download step; the files installed by Debian's
``dataset-fashion-mnist`` package (or copied by hand) sit anywhere. The reader checks the header
against the payload so that a truncated download fails loudly here rather than as a reshape error,
or as silently garbled images, later on.

Layout: two zero bytes, a dtype code, the number of dimensions ``d``, then ``d`` big-endian uint32
sizes, then the values in C order (multi-byte values big-endian).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

# dtype code -> big-endian numpy dtype (the codes are those of the IDX specification)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _corrupt(path: Path, why: str) -> DataError:
    return DataError(
        f"{path} is corrupt or truncated ({why}); delete it and obtain the file again"
    )


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when the name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError as e:
        raise DataError(f"{path} does not exist") from e
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise _corrupt(path, f"gzip stream is broken: {e}") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e


def parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Decode IDX bytes, validating the header; ``path`` is only used in error messages."""
    if len(raw) < 4:
        raise _corrupt(path, f"only {len(raw)} bytes, shorter than the 4-byte IDX magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise _corrupt(path, f"magic number {raw[:4].hex()} does not start with two zero bytes")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise _corrupt(path, f"unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise _corrupt(path, "header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _corrupt(path, f"header needs {header} bytes, file has {len(raw)}")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise _corrupt(
            path, f"header declares shape {shape} ({expected} bytes), file has {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (plain or ``.gz``) into a tensor of its shape and dtype.

    Raises ``DataError`` naming the file when it is missing, or corrupt / truncated (bad magic
    number, unknown dtype code, or a length that disagrees with the header).
    """
    path = Path(path)
    return torch.from_numpy(parse_idx(_read_bytes(path), path))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in ``.gz``).

    Exists so that tests and users can make small IDX files for the reader.
    """
    path = Path(path)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = np.dtype(array.dtype).newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)
