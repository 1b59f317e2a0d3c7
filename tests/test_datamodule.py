import torch

from workbench.config import DataConfig, ShapesConfig
from workbench.data import ImageSet, TensorBatches, TensorDataModule, split_indices


def tiny_config(**kw):
    return DataConfig(name="shapes", batch_size=32, probe_size=50, shapes=ShapesConfig(num_images=400), **kw)


def test_split_indices_are_disjoint_cover_everything_and_depend_on_the_seed():
    a, b, c = split_indices(100, [0.5, 0.3], seed=0)
    assert (len(a), len(b), len(c)) == (50, 30, 20)
    assert sorted(torch.cat([a, b, c]).tolist()) == list(range(100))
    again = split_indices(100, [0.5, 0.3], seed=0)
    assert all(torch.equal(x, y) for x, y in zip((a, b, c), again))
    assert not torch.equal(a, split_indices(100, [0.5, 0.3], seed=1)[0])


def test_splits_are_fixed_by_the_seed_and_disjoint(tmp_path):
    dm = TensorDataModule(tiny_config(), cache_dir=tmp_path).prepare()
    again = TensorDataModule(tiny_config(), cache_dir=tmp_path).prepare()
    for split in ("train", "val", "test", "probe"):
        assert torch.equal(dm.splits[split].images, again.splits[split].images)
    # 400 images: 10% test (40), then 10% of the remaining 360 for validation (36)
    assert (len(dm.splits["train"]), len(dm.splits["val"]), len(dm.splits["test"])) == (324, 36, 40)
    assert len(dm.splits["probe"]) == 36  # probe_size is capped by the validation split
    torch.testing.assert_close(dm.splits["probe"].images, dm.splits["val"].images[:36])
    # disjoint: no training image appears in the test split (images are distinct with noise)
    train = {bytes(x.numpy()) for x in dm.splits["train"].images}
    assert not any(bytes(x.numpy()) in train for x in dm.splits["test"].images)


def test_info_holds_channel_statistics(tmp_path):
    dm = TensorDataModule(tiny_config(), cache_dir=tmp_path)
    info = dm.info
    x = dm.splits["train"].images.float() / 255
    torch.testing.assert_close(torch.tensor(info.mean), x.mean(dim=(0, 2, 3)))
    assert info.channels == 3 and info.image_size == 32 and info.num_classes == 4
    assert [f.name for f in info.factors][:3] == ["color", "texture", "noise"]
    assert type(info).from_dict(info.to_dict()) == info


def make_set(n):
    return ImageSet(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), torch.arange(n), None)


def test_batches_cover_the_set_once_per_epoch_in_a_seeded_order():
    epoch = [0]
    loader = TensorBatches(make_set(10), batch_size=4, shuffle=True, seed=3, epoch=lambda: epoch[0], drop_last=True)
    assert len(loader) == 2
    first = torch.cat([b["labels"] for b in loader])
    assert len(first) == 8 and len(set(first.tolist())) == 8
    assert torch.equal(first, torch.cat([b["labels"] for b in loader]))  # same epoch, same order
    epoch[0] = 1
    assert not torch.equal(first, torch.cat([b["labels"] for b in loader]))


def test_evaluation_batches_keep_order_and_the_remainder():
    loader = TensorBatches(make_set(10), batch_size=4, shuffle=False)
    batches = list(loader)
    assert len(loader) == 3 and [len(b["labels"]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b["labels"] for b in batches]), torch.arange(10))
    assert torch.equal(batches[0]["images"].flatten(), torch.arange(4, dtype=torch.uint8))


def test_ranks_split_one_global_order_without_overlap():
    full = TensorBatches(make_set(20), batch_size=4, shuffle=True, seed=1)
    ranks = [TensorBatches(make_set(20), batch_size=4, shuffle=True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    assert [len(r) for r in ranks] == [3, 2]
    seen = torch.cat([b["labels"] for r in ranks for b in r])
    assert sorted(seen.tolist()) == list(range(20))
    assert torch.equal(torch.cat([b["labels"] for b in ranks[0]]),
                       torch.cat([b["labels"] for i, b in enumerate(full) if i % 2 == 0]))
    # training drops the remainder so that every rank takes the same number of steps
    train = [TensorBatches(make_set(20), batch_size=4, shuffle=True, seed=1, drop_last=True, rank=r, world_size=2)
             for r in (0, 1)]
    assert [len(r) for r in train] == [2, 2] and [len(list(r)) for r in train] == [2, 2]


def test_data_moves_to_the_requested_device(tmp_path):
    dm = TensorDataModule(tiny_config(), cache_dir=tmp_path).prepare()
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (32, 3, 32, 32)
    assert batch["labels"].dtype == torch.int64 and batch["factors"].shape[1] == len(dm.data.factors)
    assert batch["images"].device == dm.splits["train"].images.device
