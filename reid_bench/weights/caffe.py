"""Read Caffe ``.caffemodel`` files and convert the BVLC reference CaffeNet to our CaffeNet.

A ``.caffemodel`` is a protobuf ``NetParameter``. We read only the subset of ``caffe.proto``
the weights need, straight from the protobuf wire format (no generated code, no ``protobuf``
dependency, and the blobs' float arrays become numpy views without a copy per value):

    NetParameter      layer = 100 (LayerParameter), layers = 2 (V1LayerParameter, old files)
    LayerParameter    name = 1, blobs = 7
    V1LayerParameter  name = 4, blobs = 6
    BlobProto         num/channels/height/width = 1..4 (legacy 4-D shape), data = 5 (float),
                      shape = 7 (BlobShape), double_data = 8
    BlobShape         dim = 1 (int64)

The converter's layer mapping is explicit (``CAFFENET_LAYERS``) and its output is checked by
loading it strictly into ``caffenet()`` before anything is written. Output format:
safetensors (no pickle: the file is data only and loads memory-mapped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core import atomic
from ..core.hashing import file_digest
from .store import WeightsError

# Protobuf wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# BVLC CaffeNet layer → our CaffeNet module (models/backbones.py: features = conv1, relu, pool,
# lrn, conv2, relu, pool, lrn, conv3, relu, conv4, relu, conv5, relu, pool; fc = fc6, relu,
# dropout, fc7, relu). Each Caffe layer holds [weight, bias]. fc8 (the 1000-way ImageNet
# classifier) is the head the methods replace: it is not converted.
CAFFENET_LAYERS = {
    "conv1": "features.0", "conv2": "features.4", "conv3": "features.8",
    "conv4": "features.10", "conv5": "features.12", "fc6": "fc.0", "fc7": "fc.3",
}
CAFFENET_HEAD = ("fc8",)


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise WeightsError("truncated protobuf (varint runs past the end)")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: memoryview):
    """Yield (field number, wire type, value) of one message: ints for varint/fixed fields,
    a memoryview of the payload for length-delimited ones."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == _VARINT:
            val, i = _varint(buf, i)
        elif wt == _LEN:
            size, i = _varint(buf, i)
            if i + size > n:
                raise WeightsError("truncated protobuf (a field runs past the end)")
            val, i = buf[i:i + size], i + size
        elif wt == _I32:
            val, i = buf[i:i + 4], i + 4
        elif wt == _I64:
            val, i = buf[i:i + 8], i + 8
        else:
            raise WeightsError(f"not a Caffe protobuf (wire type {wt} of field {num})")
        yield num, wt, val


def _floats(parts: list[tuple[int, memoryview]], dtype: str) -> np.ndarray:
    """A repeated float/double field: packed (one length-delimited run) or one fixed-width
    value per occurrence (non-packed writers)."""
    if not parts:
        return np.zeros(0, dtype=np.float32)
    arrays = [np.frombuffer(v, dtype=dtype) for _, v in parts]
    return (arrays[0] if len(arrays) == 1 else np.concatenate(arrays)).astype(np.float32)


def read_blob(buf: memoryview) -> np.ndarray:
    """One ``BlobProto`` → float32 array of its shape (``shape.dim`` or the legacy
    num/channels/height/width, whose leading 1s old Caffe files carry and we squeeze)."""
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    data: list = []
    ddata: list = []
    dims: list[int] | None = None
    for num, wt, val in _fields(buf):
        if num in legacy and wt == _VARINT:
            legacy[num] = val
        elif num == 5:
            data.append((wt, val))
        elif num == 8:
            ddata.append((wt, val))
        elif num == 7 and wt == _LEN:
            dims = []
            for dnum, dwt, dval in _fields(val):
                if dnum != 1:
                    continue
                if dwt == _VARINT:
                    dims.append(dval)
                else:  # packed int64 varints
                    j = 0
                    while j < len(dval):
                        d, j = _varint(dval, j)
                        dims.append(d)
    arr = _floats(data, "<f4") if data else _floats(ddata, "<f8")
    if dims is None:
        dims = [legacy[k] for k in (1, 2, 3, 4)]
        # Legacy blobs are always 4-D: an fc weight is 1×1×out×in, a bias 1×1×1×out.
        while len(dims) > 1 and dims[0] == 1:
            dims = dims[1:]
    if int(np.prod(dims)) != arr.size:
        raise WeightsError(f"blob of shape {dims} holds {arr.size} values")
    return arr.reshape(dims)


def read_caffemodel(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Layer name → its blobs (float32 arrays), for every layer that has blobs, from a
    ``.caffemodel`` (new ``layer`` or V1 ``layers`` format)."""
    raw = Path(path).read_bytes()
    buf = memoryview(raw)
    out: dict[str, list[np.ndarray]] = {}
    for num, wt, val in _fields(buf):
        if wt != _LEN or num not in (100, 2):
            continue
        name_field, blob_field = (1, 7) if num == 100 else (4, 6)
        name, blobs = None, []
        for lnum, lwt, lval in _fields(val):
            if lnum == name_field and lwt == _LEN:
                name = bytes(lval).decode("utf-8")
            elif lnum == blob_field and lwt == _LEN:
                blobs.append(read_blob(lval))
        if name is not None and blobs:
            if name in out:
                raise WeightsError(f"{path}: layer {name!r} appears twice")
            out[name] = blobs
    if not out:
        raise WeightsError(f"{path}: no layers with weights; is this a .caffemodel "
                           "(not a .prototxt or a solverstate)?")
    return out


def caffenet_state_dict(layers: dict[str, list[np.ndarray]]) -> dict[str, torch.Tensor]:
    """Our CaffeNet's state dict from the BVLC layers (``CAFFENET_LAYERS``); every mapped layer
    must be there with a weight and a bias, and no other layer but the fc8 head may be."""
    missing = [n for n in CAFFENET_LAYERS if n not in layers]
    extra = [n for n in layers if n not in CAFFENET_LAYERS and n not in CAFFENET_HEAD]
    if missing or extra:
        raise WeightsError(f"not the BVLC CaffeNet: missing layers {missing}, "
                           f"unexpected layers {extra}")
    state: dict[str, torch.Tensor] = {}
    for caffe_name, ours in CAFFENET_LAYERS.items():
        blobs = layers[caffe_name]
        if len(blobs) != 2:
            raise WeightsError(f"layer {caffe_name} has {len(blobs)} blobs, expected weight "
                               "and bias")
        w, b = blobs
        # Caffe stores conv weights out × in/groups × kh × kw and fc weights out × in with the
        # input flattened as C×H×W: the same layouts as torch, so no transpose.
        state[f"{ours}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        state[f"{ours}.bias"] = torch.from_numpy(np.ascontiguousarray(b).reshape(-1))
    return state


def convert_caffenet(caffemodel: str | Path, out: str | Path, *, width: float = 1.0,
                     expected_sha1: str | None = None) -> Path:
    """Convert a BVLC CaffeNet ``.caffemodel`` into a safetensors state dict of
    ``caffenet(width)`` at ``out``. The result is loaded strictly into a fresh network before
    the file is written (atomically); ``expected_sha1`` checks the input file first."""
    from safetensors.torch import save_file

    from ..models.backbones import build_backbone
    from .load import load_strict

    src = Path(caffemodel)
    if not src.is_file():
        raise WeightsError(f"{src}: no such file")
    if expected_sha1:
        got = file_digest(src, "sha1")
        if got != expected_sha1:
            raise WeightsError(f"{src}: sha1 {got} is not the BVLC reference CaffeNet's "
                               f"({expected_sha1}); pass --no-verify to convert it anyway")
    state = caffenet_state_dict(read_caffemodel(src))
    net = build_backbone("caffenet", width=width, pretrained="none")
    load_strict(net, state, where=f"converted {src}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic.save(out, lambda tmp: save_file(
        state, str(tmp), metadata={"source": src.name, "converter": "reid_bench.weights.caffe"}))
