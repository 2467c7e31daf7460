"""Transforms and the torch image dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_data import write_jpg
from PIL import Image

from reid_bench.core.errors import DatasetError
from reid_bench.data.base import Sample
from reid_bench.data.torch_dataset import ImageDataset
from reid_bench.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transform,
    compute_mean_colour,
)
from reid_bench.engine.recipe import InputRecipe


def _png(path, arr):
    Image.fromarray(arr).save(path)
    return str(path)


def test_test_transform_imagenet_values(tmp_path):
    arr = np.full((40, 20, 3), (255, 0, 128), np.uint8)
    img = Image.fromarray(arr)
    t = build_transform(InputRecipe(height=32, width=16), train=False)
    x = t(img)
    assert x.shape == (3, 32, 16) and x.dtype == torch.float32
    want = (np.array([1.0, 0.0, 128 / 255]) - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(x.mean((1, 2)).numpy(), want, atol=1e-4)


def test_test_center_crop_and_none(tmp_path):
    arr = np.zeros((40, 40, 3), np.uint8)
    arr[:, :10] = 255  # left quarter white: cropped away by a 20-wide centre crop of 40
    inp = InputRecipe(height=40, width=20, resize=(40, 40), test_center_crop=True, normalize="none")
    x = build_transform(inp, train=False)(Image.fromarray(arr))
    assert x.shape == (3, 40, 20) and float(x.max()) == 0.0


def test_train_pipeline_shape_flip_erasing():
    inp = InputRecipe(height=32, width=16, resize=(36, 18), pad=2, random_crop=True, flip=True,
                      random_erasing=1.0, normalize="mean_image")
    t = build_transform(inp, train=True, mean_colour=(0.5, 0.5, 0.5))
    img = Image.fromarray(np.full((50, 25, 3), 200, np.uint8))
    torch.manual_seed(0)
    x = t(img)
    assert x.shape == (3, 32, 16)
    # Mean subtraction in the ResNet-50 weights' scale: (200/255 - 0.5) / std everywhere except
    # zero padding and the erased region (0).
    want = ((200 / 255 - 0.5) / np.array(IMAGENET_STD))[:, None]
    v = x.numpy().reshape(3, -1)
    assert np.isclose(v, want, atol=1e-5).any()
    assert (v == 0).any()  # erased region (fill 0 = the mean colour)
    assert np.isclose(v, want, atol=1e-5).mean() < 1
    names = [type(s).__name__ for s in t.transforms]
    assert names == ["Resize", "Pad", "RandomCrop", "RandomHorizontalFlip", "ToTensor",
                     "Preprocess", "RandomErasing"]


def test_train_without_crop_still_recipe_size():
    inp = InputRecipe(height=32, width=16, resize=(40, 20), flip=False)
    x = build_transform(inp, train=True)(Image.new("RGB", (30, 60)))
    assert x.shape == (3, 32, 16)


def test_mean_image_required():
    with pytest.raises(ValueError, match="mean_image"):
        build_transform(InputRecipe(normalize="mean_image"), train=True)


def test_compute_mean_colour(tmp_path):
    a = np.zeros((10, 10, 3), np.uint8)
    a[..., 0] = 255
    b = np.zeros((10, 10, 3), np.uint8)
    b[..., 2] = 255
    s = [Sample(_png(tmp_path / "a.png", a), 1, 0), Sample(_png(tmp_path / "b.png", b), 2, 0)]
    assert np.allclose(compute_mean_colour(s), (0.5, 0.0, 0.5))
    # bbox crop is honoured: only the red image's left half … still red.
    half = np.zeros((10, 10, 3), np.uint8)
    half[:, :5] = 255
    s2 = [Sample(_png(tmp_path / "h.png", half), 1, 0, bbox=(0, 0, 5, 10))]
    assert np.allclose(compute_mean_colour(s2), (1.0, 1.0, 1.0))


def test_image_dataset_relabel_crop_and_items(tmp_path):
    arr = np.zeros((20, 10, 3), np.uint8)
    arr[:, 5:] = 255
    p = _png(tmp_path / "x.png", arr)
    samples = [Sample(p, 42, 3), Sample(p, 7, 1, bbox=(5, 0, 10, 20)), Sample(p, 42, 0)]
    ds = ImageDataset(samples, build_transform(InputRecipe(height=20, width=10, flip=False,
                                                           normalize="none"), train=False), True)
    assert ds.num_classes == 2 and len(ds) == 3
    img, label, camid, idx = ds[1]
    assert (label, camid, idx) == (0, 1, 1)  # pid 7 < 42 → label 0
    assert float(img.min()) == 1.0  # cropped to the white half
    assert ds[0][1] == 1 and ds[2][1] == 1
    raw = ImageDataset(samples, None, relabel=False)
    assert raw[0][1] == 42 and raw.num_classes == 2


def test_truncated_image_named(tmp_path):
    p = write_jpg(tmp_path / "0001_c1s1_000001_00.jpg", size=(64, 128))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    ds = ImageDataset([Sample(str(p), 1, 0)], None, relabel=True)
    with pytest.raises(DatasetError, match="0001_c1s1_000001_00.jpg"):
        ds[0]
    with pytest.raises(DatasetError, match="missing.jpg"):
        ImageDataset([Sample(str(tmp_path / "missing.jpg"), 1, 0)], None, True)[0]


def test_imagenet_statistics_are_timms():
    """The written-out ImageNet mean/std (data.transforms, kept free of a timm import) are the
    ones the weights' own preprocessing uses."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    assert IMAGENET_MEAN == tuple(IMAGENET_DEFAULT_MEAN)
    assert IMAGENET_STD == tuple(IMAGENET_DEFAULT_STD)
