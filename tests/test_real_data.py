"""Real-data loaders: bundled digits, Debian's FashionMNIST, and small hand-written files in the
formats of IDX, CIFAR and ImageFolder (no network is ever used)."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.data.base import ImageData
from workbench.data.cifar import load_pickle
from workbench.data.idx import read_idx, write_idx
from workbench.data.real import (
    DEBIAN_FASHION_MNIST,
    REAL_DATASETS,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    load_mnist,
    load_stl10,
    load_svhn,
)
from workbench.errors import DataError

# ---- digits --------------------------------------------------------------------------------


def test_digits_are_uint8_full_range_with_all_classes():
    data = load_digits()
    assert data.name == "digits"
    assert data.train.images.shape == (1797, 1, 8, 8)
    assert data.train.images.dtype == torch.uint8
    assert int(data.train.images.max()) == 255 and int(data.train.images.min()) == 0
    assert data.test is None
    assert data.classes == tuple(str(i) for i in range(10))
    assert set(data.train.labels.tolist()) == set(range(10))
    assert data.train.labels.dtype == torch.int64


def test_image_size_resizes_and_bad_values_are_refused():
    assert load_digits(image_size=16).train.images.shape == (1797, 1, 16, 16)
    with pytest.raises(ValueError, match="image_size"):
        load_digits(image_size=0)


# ---- FashionMNIST from Debian's package ----------------------------------------------------


def _require_debian_fashion_mnist() -> None:
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        message = (
            f"FashionMNIST is not installed under {DEBIAN_FASHION_MNIST}; "
            "run `apt-get install dataset-fashion-mnist`"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_fashion_mnist_from_debian_package():
    _require_debian_fashion_mnist()
    data = load_fashion_mnist(DEBIAN_FASHION_MNIST)
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    for split in (data.train, data.test):
        assert split.images.dtype == torch.uint8
        assert int(split.images.min()) == 0 and int(split.images.max()) == 255
    assert len(data.classes) == 10 and data.classes[0] == "T-shirt/top"
    assert torch.bincount(data.train.labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(data.test.labels, minlength=10).tolist() == [1000] * 10


def test_fashion_mnist_default_search_finds_debian_package(tmp_path, monkeypatch):
    _require_debian_fashion_mnist()
    monkeypatch.chdir(tmp_path)  # no data/ here, so the search must reach the Debian directory
    data = load_fashion_mnist(image_size=14)
    assert data.test.images.shape == (10000, 1, 14, 14)


# ---- IDX -----------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written by hand from the specification (ubyte code 0x08)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_plain_and_gzipped(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    plain, packed = tmp_path / "a-idx3-ubyte", tmp_path / "b-idx3-ubyte.gz"
    plain.write_bytes(_idx_bytes(array))
    packed.write_bytes(gzip.compress(_idx_bytes(array)))
    for path in (plain, str(packed)):
        out = read_idx(path)
        assert out.dtype == torch.uint8 and out.shape == (2, 3, 4)
        assert torch.equal(out, torch.from_numpy(array))


def test_read_idx_big_endian_types_round_trip(tmp_path):
    array = np.array([[1, -2], [300, 40000]], dtype=np.int32)
    write_idx(tmp_path / "x.idx", array)
    assert read_idx(tmp_path / "x.idx").tolist() == array.tolist()
    floats = np.linspace(-1, 1, 5, dtype=np.float32)
    write_idx(tmp_path / "f.idx.gz", floats)
    assert np.allclose(read_idx(tmp_path / "f.idx.gz").numpy(), floats)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b[:-5], id="truncated"),
        pytest.param(lambda b: b + b"\0", id="trailing-bytes"),
        pytest.param(lambda b: b"\x01" + b[1:], id="bad-magic"),
        pytest.param(lambda b: b[:2] + b"\x07" + b[3:], id="bad-dtype"),
        pytest.param(lambda b: b[:6], id="truncated-header"),
    ],
)
def test_read_idx_refuses_corrupt_files(tmp_path, mutate):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mutate(_idx_bytes(np.zeros((3, 4, 4), np.uint8))))
    with pytest.raises(DataError, match="corrupt or truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_refuses_truncated_gzip(tmp_path):
    path = tmp_path / "bad-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.ones((50, 8, 8), np.uint8)))[:-20])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def _write_mnist_like(directory: Path, n_train: int = 20, n_test: int = 10, gz: bool = True):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels)
        arrays[split] = (images, labels)
    return arrays


def test_mnist_from_torchvision_layout(tmp_path):
    arrays = _write_mnist_like(tmp_path / "MNIST" / "raw", gz=False)
    data = load_mnist(str(tmp_path))
    assert data.name == "mnist" and data.classes == tuple(str(i) for i in range(10))
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(arrays["train"][0]))
    assert torch.equal(data.test.labels, torch.from_numpy(arrays["t10k"][1]).long())


def test_fashion_mnist_from_root_directly(tmp_path):
    arrays = _write_mnist_like(tmp_path)
    data = load_fashion_mnist(tmp_path)
    assert data.train.images.shape == (20, 1, 28, 28)
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(arrays["t10k"][0]))


def test_missing_fashion_mnist_says_where_and_how(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_fashion_mnist(root)
    message = str(info.value)
    assert str(root) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download: true" in message


def test_missing_mnist_lists_paths(tmp_path):
    with pytest.raises(DataError, match="download: true") as info:
        load_mnist(tmp_path)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)


# ---- CIFAR ---------------------------------------------------------------------------------


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _write_cifar10(directory: Path, per_batch: int = 3) -> dict[str, np.ndarray]:
    """A tiny CIFAR-10 in the official layout: bytes keys, N x 3072 uint8 data, list labels."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(k + i) % 10 for i in range(per_batch)]
        _dump(directory / name, {b"batch_label": name.encode(), b"data": data, b"labels": labels},
              protocol=2 + k % 4)  # several pickle protocols, as files from anywhere would be
        written[name] = data
    label_names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer",
                                        "dog", "frog", "horse", "ship", "truck")]
    _dump(directory / "batches.meta", {b"label_names": label_names, b"num_vis": 3072})
    return written


def test_cifar10_pixels_and_channel_first_layout(tmp_path):
    written = _write_cifar10(tmp_path / "cifar-10-batches-py")
    data = load_cifar10(tmp_path)
    assert data.train.images.shape == (15, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (3, 3, 32, 32)
    assert data.classes[1] == "automobile" and len(data.classes) == 10
    assert data.train.labels.tolist()[:3] == [0, 1, 2]
    # a row is 1024 red, 1024 green, 1024 blue values in row-major order
    c, y, x = 2, 5, 7
    row = written["data_batch_2"][1]
    assert int(data.train.images[3 + 1, c, y, x]) == int(row[c * 1024 + y * 32 + x])
    expected = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)])
    assert torch.equal(data.train.images.reshape(15, -1), torch.from_numpy(expected))
    assert torch.equal(data.test.images.reshape(3, -1), torch.from_numpy(written["test_batch"]))
    # root may also be the batch directory itself
    assert torch.equal(load_cifar10(tmp_path / "cifar-10-batches-py").test.images,
                       data.test.images)


def test_cifar100_fine_labels(tmp_path):
    directory = tmp_path / "cifar-100-python"
    directory.mkdir()
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    test = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    _dump(directory / "train", {b"data": train, b"fine_labels": [0, 99, 5, 42],
                                b"coarse_labels": [0, 19, 1, 2]}, protocol=4)
    _dump(directory / "test", {b"data": test, b"fine_labels": [7, 8], b"coarse_labels": [1, 1]})
    fine = [f"class{i}".encode() for i in range(100)]
    _dump(directory / "meta", {b"fine_label_names": fine, b"coarse_label_names": [b"x"] * 20})
    data = load_cifar100(str(tmp_path))
    assert data.name == "cifar100" and len(data.classes) == 100 and data.classes[99] == "class99"
    assert data.train.labels.tolist() == [0, 99, 5, 42]
    assert int(data.test.images[1, 1, 31, 0]) == int(test[1, 1024 + 31 * 32])


def test_cifar_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="download: true") as info:
        load_cifar10(tmp_path)
    assert str(tmp_path / "cifar-10-batches-py" / "batches.meta") in str(info.value)

    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar10(directory)
    batch = directory / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt or truncated") as info:
        load_cifar10(tmp_path)
    assert str(batch) in str(info.value)

    _dump(batch, {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError, match="3072"):
        load_cifar10(tmp_path)

    _dump(batch, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(DataError, match="labels"):
        load_cifar10(tmp_path)

    (directory / "test_batch").unlink()
    with pytest.raises(DataError, match="incomplete") as info:
        load_cifar10(tmp_path)
    assert str(directory / "test_batch") in str(info.value)


def test_cifar_written_by_numpy_1_is_read(tmp_path):
    """The official files name numpy 1's module (numpy.core.multiarray), not numpy 2's."""
    directory = tmp_path / "cifar-10-batches-py"
    written = _write_cifar10(directory)
    for name in written:
        raw = pickle.dumps(
            {b"data": written[name], b"labels": [0, 1, 2]}, protocol=2
        ).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        assert b"numpy.core.multiarray" in raw
        (directory / name).write_bytes(raw)
    data = load_cifar10(directory)
    assert torch.equal(data.test.images.reshape(3, -1), torch.from_numpy(written["test_batch"]))


class _Exploit:
    """Unpickling this would run a shell command that creates a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    directory = tmp_path / "cifar-10-batches-py"
    _write_cifar10(directory)
    _dump(directory / "data_batch_1", {b"data": _Exploit(marker), b"labels": []})
    with pytest.raises(DataError, match="refused") as info:
        load_cifar10(tmp_path)
    assert "system" in str(info.value) and str(directory / "data_batch_1") in str(info.value)
    assert not marker.exists()

    evil = tmp_path / "evil"
    evil.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")  # builtins.eval("1+1")
    with pytest.raises(DataError, match="builtins.eval"):
        load_pickle(evil)


# ---- STL-10 / SVHN (torchvision formats; only their absence can be tested offline) ---------


@pytest.mark.parametrize("loader", [load_stl10, load_svhn])
def test_torchvision_sets_missing_give_data_error(tmp_path, loader):
    with pytest.raises(DataError, match="download: true") as info:
        loader(tmp_path)
    assert str(tmp_path) in str(info.value)


class _FakeSVHN:
    """Stands in for torchvision's SVHN: the arrays as torchvision holds them."""

    def __init__(self, root, split="train", download=False):
        n = 5 if split == "train" else 3
        self.data = np.arange(n * 3 * 32 * 32, dtype=np.int64).reshape(n, 3, 32, 32).astype(
            np.uint8
        )
        self.labels = np.arange(n, dtype=np.int64)


def test_svhn_takes_torchvision_arrays(monkeypatch, tmp_path):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "SVHN", _FakeSVHN)
    data = load_svhn(tmp_path, image_size=16)
    assert data.train.images.shape == (5, 3, 16, 16) and data.test.images.shape == (3, 3, 16, 16)
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64
    assert torch.equal(load_svhn(tmp_path).train.images, torch.from_numpy(_FakeSVHN(0).data))


def test_failed_download_says_so_and_lists_offline_ways(monkeypatch, tmp_path):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DataError, match="downloading FashionMNIST") as info:
        load_fashion_mnist(tmp_path, download=True)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert str(tmp_path) in str(info.value)


# ---- ImageFolder ---------------------------------------------------------------------------


def test_image_folder(tmp_path):
    from PIL import Image

    colours = {"cats": (255, 0, 0), "dogs": (0, 0, 255)}
    for name, colour in colours.items():
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (20 + i, 24), colour).save(tmp_path / name / f"{i}.png")
    Image.new("L", (30, 30), 128).save(tmp_path / "dogs" / "grey.png")  # converted to RGB
    data = load_image_folder(tmp_path, image_size=16)
    assert data.classes == ("cats", "dogs")
    assert data.train.images.shape == (7, 3, 16, 16) and data.train.images.dtype == torch.uint8
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert data.train.images[0, :, 8, 8].tolist() == [255, 0, 0]
    assert data.test is None

    with pytest.raises(DataError, match="image_size"):
        load_image_folder(tmp_path)  # sizes differ and no image_size given


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path / "absent", image_size=8)
    assert str(tmp_path / "absent") in str(info.value)
    with pytest.raises(DataError, match="class"):
        load_image_folder(tmp_path, image_size=8)
    with pytest.raises(DataError, match="root"):
        load_image_folder(None, image_size=8)


def test_registry_covers_every_loader():
    assert set(REAL_DATASETS) == {
        "digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "stl10", "svhn", "image_folder",
    }  # fmt: skip
    assert isinstance(REAL_DATASETS["digits"](root=None, download=False, image_size=None),
                      ImageData)
