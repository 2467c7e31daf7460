"""Pretrained weights: strict loading, the BVLC CaffeNet conversion, the input each weight set
expects, file lookup and the offline error."""

from __future__ import annotations

import logging
import struct
import time

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from reid_bench.data.transforms import build_transform
from reid_bench.engine.recipe import InputRecipe
from reid_bench.models.backbones import build_backbone
from reid_bench.weights import WeightsError, load_pretrained, store
from reid_bench.weights.caffe import convert_caffenet, read_caffemodel

# ------------------------------------------------------------------ a tiny protobuf writer
# Written here from caffe.proto's field numbers, independently of the reader under test.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _int_field(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value)


def _blob(arr: np.ndarray, legacy: bool, packed: bool = True) -> bytes:
    if legacy:  # num/channels/height/width, padded with leading 1s to 4-D
        dims = (1,) * (4 - arr.ndim) + arr.shape
        msg = b"".join(_int_field(i + 1, d) for i, d in enumerate(dims))
    else:  # BlobShape {repeated int64 dim = 1 [packed]}
        msg = _len_field(7, _len_field(1, b"".join(_varint(d) for d in arr.shape)))
    flat = arr.astype("<f4").ravel()
    if packed:
        msg += _len_field(5, flat.tobytes())
    else:  # one fixed32 per value, as a non-packed writer would
        msg += b"".join(_varint(5 << 3 | 5) + struct.pack("<f", v) for v in flat)
    return msg


def _layer(name: str, blobs: list[np.ndarray], v1: bool) -> bytes:
    if v1:  # V1LayerParameter: name = 4, type = 5 (enum), blobs = 6; NetParameter.layers = 2
        body = _len_field(4, name.encode()) + _int_field(5, 4)
        body += b"".join(_len_field(6, _blob(b, legacy=True)) for b in blobs)
        return _len_field(2, body)
    # LayerParameter: name = 1, type = 2, blobs = 7; NetParameter.layer = 100
    body = _len_field(1, name.encode()) + _len_field(2, b"Convolution")
    body += b"".join(_len_field(7, _blob(b, legacy=False, packed=i == 0))
                     for i, b in enumerate(blobs))
    return _len_field(100, body)


# Our CaffeNet's parameter names for the BVLC layers (models/backbones.py layout).
OURS = {"conv1": "features.0", "conv2": "features.4", "conv3": "features.8",
        "conv4": "features.10", "conv5": "features.12", "fc6": "fc.0", "fc7": "fc.3"}
WIDTH = 0.0625


def _known_caffenet(width: float) -> dict[str, list[np.ndarray]]:
    """BVLC-named blobs shaped like caffenet(width), with known distinct values."""
    net = build_backbone("caffenet", width=width)
    sd = net.state_dict()
    layers = {}
    for i, (caffe, ours) in enumerate(OURS.items()):
        w = sd[f"{ours}.weight"]
        layers[caffe] = [
            (np.arange(w.numel(), dtype=np.float32).reshape(w.shape) * 1e-4 + i),
            (np.arange(sd[f"{ours}.bias"].numel(), dtype=np.float32) - 100.0 * i),
        ]
    fc7 = layers["fc7"][0]
    layers["fc8"] = [np.ones((10, fc7.shape[0]), np.float32), np.zeros(10, np.float32)]
    return layers


def _write_caffemodel(path, layers, v1: bool) -> None:
    data = _len_field(1, b"CaffeNet")
    data += _layer("data", [], v1)  # layers without blobs are skipped
    for name, blobs in layers.items():
        data += _layer(name, blobs, v1)
        if name == "conv1":
            data += _layer("relu1", [], v1)
    path.write_bytes(data)


@pytest.mark.parametrize("v1", [False, True], ids=["layer", "v1-layers"])
def test_caffenet_conversion_round_trips_a_written_caffemodel(tmp_path, v1, caplog):
    layers = _known_caffenet(WIDTH)
    src = tmp_path / "tiny.caffemodel"
    _write_caffemodel(src, layers, v1)

    read = read_caffemodel(src)
    assert list(read) == list(layers)  # layers without blobs skipped, order kept
    for name, blobs in layers.items():
        for got, want in zip(read[name], blobs, strict=True):
            np.testing.assert_array_equal(got, want)

    out = convert_caffenet(src, tmp_path / "caffenet.safetensors", width=WIDTH)
    state = load_file(str(out))
    assert sorted(state) == sorted(f"{o}.{k}" for o in OURS.values() for k in ("weight", "bias"))
    for caffe, ours in OURS.items():
        np.testing.assert_array_equal(state[f"{ours}.weight"].numpy(), layers[caffe][0])
        np.testing.assert_array_equal(state[f"{ours}.bias"].numpy(), layers[caffe][1])
    # And it loads strictly into the network through the normal path.
    net = build_backbone("caffenet", width=WIDTH)
    with caplog.at_level(logging.INFO, logger="reid_bench.weights"):
        rec = load_pretrained(net, "caffenet", str(out))
    assert torch.equal(net.fc[3].weight, torch.from_numpy(layers["fc7"][0]))
    assert rec.sha256 == store.sha256(out)
    # The load is logged (shown by the CLI's console handler), naming the file's hash.
    assert caplog.messages == [f"  caffenet: loaded {rec.source} (sha256 {rec.sha256[:12]})"]


def test_caffenet_conversion_rejects_other_nets_and_wrong_sha1(tmp_path):
    layers = _known_caffenet(WIDTH)
    bad = dict(layers)
    bad["fc9"] = bad.pop("fc7")
    src = tmp_path / "bad.caffemodel"
    _write_caffemodel(src, bad, v1=False)
    with pytest.raises(WeightsError, match=r"missing layers \['fc7'\].*unexpected.*fc9"):
        convert_caffenet(src, tmp_path / "x.safetensors", width=WIDTH)
    good = tmp_path / "good.caffemodel"
    _write_caffemodel(good, layers, v1=False)
    with pytest.raises(WeightsError, match="sha1"):
        convert_caffenet(good, tmp_path / "x.safetensors", width=WIDTH, expected_sha1="0" * 40)
    assert not (tmp_path / "x.safetensors").exists()


def test_strict_loading_rejects_renamed_fc6_naming_the_keys(tmp_path):
    net = build_backbone("caffenet", width=WIDTH)
    sd = {("fc6." + k[len("fc.0."):] if k.startswith("fc.0.") else k): v.clone()
          for k, v in net.state_dict().items()}
    f = tmp_path / "renamed.safetensors"
    save_file(sd, str(f))
    with pytest.raises(WeightsError) as err:
        load_pretrained(build_backbone("caffenet", width=WIDTH), "caffenet", str(f))
    msg = str(err.value)
    assert "missing keys ['fc.0.bias', 'fc.0.weight']" in msg
    assert "unexpected keys ['fc6.bias', 'fc6.weight']" in msg


def test_strict_loading_drops_only_the_named_head(tmp_path):
    """VGG16's fc8 (classifier.6) may be in the file; a stray key may not."""
    from reid_bench.weights import load_strict

    net = build_backbone("vgg16", width=0.0625)
    sd = {f"classifier.{k}" if not k.startswith("features") else k: v
          for k, v in {**{f"features.{k}": v for k, v in net.features.state_dict().items()},
                       **{k: v for k, v in net.fc.state_dict().items()}}.items()}
    module = nn.Module()
    module.features, module.classifier = net.features, net.fc
    head = {"classifier.6.weight": torch.zeros(10, 256), "classifier.6.bias": torch.zeros(10)}
    load_strict(module, {**sd, **head}, head=("classifier.6.",))
    with pytest.raises(WeightsError, match=r"unexpected keys \['classifier.7.weight'\]"):
        load_strict(module, {**sd, "classifier.7.weight": torch.zeros(1)},
                    head=("classifier.6.",))


def test_torchvision_resnet50_state_dict_loads_into_our_resnet50(tmp_path):
    """timm's ResNet-50 uses torchvision's key names: a torchvision file loads strictly, only
    its fc head dropped."""
    import torchvision

    tv = torchvision.models.resnet50(weights=None).state_dict()
    f = tmp_path / "resnet50.pth"
    torch.save(tv, f)
    bb = build_backbone("resnet50", pretrained=str(f))
    assert torch.equal(bb.res5[2].conv3.weight, tv["layer4.2.conv3.weight"])
    assert torch.equal(bb.stem[1].running_var, tv["bn1.running_var"])


# ------------------------------------------------------------------ preprocessing


def _reference(backbone: str, normalize: str, img: Image.Image, mean01) -> torch.Tensor:
    """Each weight set's own preprocessing of ``img`` (already at the network's size)."""
    if backbone == "caffenet":
        # caffe.io.Transformer for the BVLC model: HxWxC RGB 0..255 → CxHxW, channel swap to
        # BGR, minus the mean (ImageNet's, or the training set's in the same scale and order).
        x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[::-1]
        mean = {"imagenet": np.array([104.00698793, 116.66876762, 122.67891434]),
                "mean_image": 255.0 * np.array(mean01)[::-1], "none": np.zeros(3)}[normalize]
        return torch.from_numpy((x - mean[:, None, None]).astype(np.float32))
    if backbone == "vgg16":
        from torchvision.models import VGG16_Weights

        ref = VGG16_Weights.IMAGENET1K_V1.transforms(crop_size=img.height,
                                                     resize_size=img.height)
        mean, std = torch.tensor(ref.mean), torch.tensor(ref.std)
        if normalize == "imagenet":
            return ref(img)
    else:
        import timm.data

        cfg = timm.models.get_pretrained_cfg("resnet50.tv_in1k").to_dict()
        ref = timm.data.create_transform(input_size=(3, img.height, img.width), crop_pct=1.0,
                                         mean=cfg["mean"], std=cfg["std"],
                                         interpolation=cfg["interpolation"])
        mean, std = torch.tensor(cfg["mean"]), torch.tensor(cfg["std"])
        if normalize == "imagenet":
            return ref(img)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    if normalize == "none":
        return x
    return (x - torch.tensor(mean01)[:, None, None]) / std[:, None, None]


@pytest.mark.parametrize("normalize", ["imagenet", "mean_image", "none"])
@pytest.mark.parametrize("backbone", ["caffenet", "vgg16", "resnet50"])
def test_network_input_equals_the_weights_reference_preprocessing(backbone, normalize):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    mean01 = (0.2, 0.5, 0.7)
    inp = InputRecipe(height=32, width=32, normalize=normalize)
    for train in (False, True):
        t = build_transform(inp.model_copy(update={"flip": False}), train=train,
                            mean_colour=mean01, backbone=backbone)
        got = t(img)
        want = _reference(backbone, normalize, img, mean01)
        scale = 255.0 if backbone == "caffenet" else 1.0
        torch.testing.assert_close(got, want, atol=1e-5 * scale, rtol=1e-5)


def test_caffenet_mean_is_caffes_imagenet_mean_in_bgr():
    from reid_bench.weights import get

    pre = get("caffenet").preprocess()
    assert pre.order == "BGR" and pre.scale == 255.0
    # Caffe's ilsvrc_2012_mean.npy per channel, B < G < R (≈ 104, 117, 123).
    assert np.allclose(pre.mean, (104.0, 116.7, 122.7), atol=0.1)


# ------------------------------------------------------------------ VGG16 dropout


def _dropouts_on_path(model) -> int:
    """Dropout modules between fc7 (the backbone's last Linear) and the new classifier."""
    fc = list(model.backbone.fc)
    last_linear = max(i for i, m in enumerate(fc) if isinstance(m, nn.Linear))
    after_fc7 = sum(isinstance(m, nn.Dropout) for m in fc[last_linear + 1:])
    return after_fc7 + int(isinstance(model.dropout, nn.Dropout))


@pytest.mark.parametrize("method", ["verif_identif", "ide"])
def test_vgg16_has_exactly_one_dropout_before_its_classifier(method):
    from reid_bench.core.registry import METHODS
    from reid_bench.models._common import StandardRecipe

    m = METHODS.get(method)()
    params = m.Params(backbone="vgg16")
    recipe = (m.Recipe() if method == "verif_identif" else StandardRecipe())
    recipe = recipe.model_copy(update={"backbone": recipe.backbone.model_copy(
        update={"pretrained": "none", "width": 0.0625})})
    model = m.build(params, recipe, 5)
    assert _dropouts_on_path(model) == 1
    # fc6's dropout (between fc6 and fc7) is the ImageNet network's own and stays.
    assert sum(isinstance(x, nn.Dropout) for x in model.backbone.fc) == 1


# ------------------------------------------------------------------ lookup and offline


def test_offline_error_is_fast_and_names_the_fixes(no_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.monotonic()
    with pytest.raises(WeightsError) as err:
        build_backbone("resnet50", pretrained="imagenet")
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg
    for fix in ("reid-bench weights fetch resnet50", "--weights resnet50=PATH",
                "REID_BENCH_WEIGHTS_DIR"):
        assert fix in msg


def test_unreachable_host_is_detected_within_the_timeout(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("REID_BENCH_OFFLINE", raising=False)

    def hang(*a, **k):  # a host that never answers: hangs past the timeout, then times out
        time.sleep(3)
        raise TimeoutError("timed out")

    monkeypatch.setattr(store.socket, "create_connection", hang)
    t0 = time.monotonic()
    why = store.offline_reason("example.invalid", timeout=0.2)
    assert time.monotonic() - t0 < 2 and "unreachable" in why


def test_lookup_order_override_dir_then_torchvision_cache(no_caches, monkeypatch):
    from reid_bench.weights import get, locate, use_overrides

    assert locate("resnet50") is None
    hub = no_caches / "torch" / "hub" / "checkpoints" / get("resnet50").library_file
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"x")
    # torchvision's cached file is the same tv_in1k weights timm would download.
    assert locate("resnet50").how == "torch hub cache"
    d = no_caches / "wdir"
    d.mkdir()
    (d / "resnet50.pth").write_bytes(b"x")
    monkeypatch.setenv(store.ENV_DIR, str(d))
    assert locate("resnet50").path == d / "resnet50.pth"
    other = no_caches / "mine.pth"
    other.write_bytes(b"x")
    with use_overrides({"resnet50": str(other)}):
        assert locate("resnet50").how == "--weights"
    # A torchvision file whose sha256 does not start with its name's prefix is corrupt.
    monkeypatch.delenv(store.ENV_DIR)
    with pytest.raises(WeightsError, match="corrupt"):
        build_backbone("resnet50", pretrained="imagenet")


def test_weights_list_runs_offline_and_lists_every_set(no_caches, monkeypatch):
    from click.testing import CliRunner

    from reid_bench.cli import main

    d = no_caches / "wdir"
    d.mkdir()
    (d / "vgg16.pth").write_bytes(b"x")
    monkeypatch.setenv(store.ENV_DIR, str(d))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(main, ["weights", "list",
                                    str(ROOT / "papers/verif_identif/table2.yaml")])
    assert res.exit_code == 0, res.output
    lines = {ln.split()[0]: ln.split()[1] for ln in res.output.splitlines()
             if ln and not ln.startswith(" ")}
    assert lines == {"caffenet": "MISSING", "vgg16": "present", "resnet50": "MISSING"}
    assert "verif_identif/table2 (3 rows)" in res.output  # caffenet and vgg16 rows
    res = CliRunner().invoke(main, ["weights", "path", "vgg16"])
    assert res.exit_code == 0 and res.output.strip() == str(d / "vgg16.pth")
    res = CliRunner().invoke(main, ["weights", "path", "caffenet"])
    assert res.exit_code == 1 and "weights convert caffenet" in res.output


def test_weights_fetch_shows_each_download_as_it_starts(no_caches, monkeypatch):
    """``store.fetch`` logs the download; ``weights fetch`` prints that record before the
    file's path (the CLI installs the console handler)."""
    import huggingface_hub
    from click.testing import CliRunner

    from reid_bench.cli import main
    from reid_bench.weights import get

    fetched: list[str] = []
    monkeypatch.setattr(store, "locate", lambda name: None)
    monkeypatch.setattr(store, "offline_reason", lambda host: "")
    # resnet50 comes through timm from the Hugging Face hub: the download is faked.
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, file: fetched.append(repo) or f"/hf/{repo}/{file}")
    res = CliRunner().invoke(main, ["weights", "fetch", "resnet50"])
    assert res.exit_code == 0, res.output
    ws = get("resnet50")
    assert len(fetched) == 1
    assert res.output.splitlines() == [f"resnet50: downloading {ws.library} {ws.tag} …",
                                       f"resnet50: /hf/{fetched[0]}/model.safetensors"]
