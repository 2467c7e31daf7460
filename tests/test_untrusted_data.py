"""A dataset folder is untrusted input: oversized images are refused from their header (named,
before any pixel is decoded), a bad image names its file, a symlink loop is named by
``data check`` instead of crashing it."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from fixtures_data import build_market, market_name, write_jpg
from PIL import Image

from reid_bench.core.errors import DatasetError
from reid_bench.data.base import Sample
from reid_bench.data.check import check_one
from reid_bench.data.image_file import DEFAULT_MAX_PIXELS, ENV, max_pixels, open_checked
from reid_bench.data.market1501_500k import distractor_listing_hash
from reid_bench.data.torch_dataset import open_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(w: int, h: int) -> bytes:
    """A PNG that declares ``w``×``h`` pixels but carries almost no data (a decompression
    bomb's header: tiny on disk, huge once decoded)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


def jpeg_header(w: int, h: int) -> bytes:
    """A real 16×16 JPEG whose frame header is rewritten to declare ``w``×``h``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def gif_header(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("P", (4, 4)).save(buf, format="GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", w, h)  # logical screen
    i = data.index(b",")  # image descriptor
    data[i + 5:i + 9] = struct.pack("<HH", w, h)
    return bytes(data)


FORMATS = {"png": png_header, "jpeg": jpeg_header, "gif": gif_header}
# Over the default limit, over PIL's own (~179 Mpx: its error names no file) and far over.
SIZES = [(8000, 6000), (10000, 10000), (20000, 20000), (60000, 60000)]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("size", SIZES)
def test_an_oversized_image_is_refused_from_its_header_naming_it(fmt, size, tmp_path):
    path = tmp_path / f"big.{fmt}"
    path.write_bytes(FORMATS[fmt](*size))
    assert path.stat().st_size < 2000
    tracemalloc.start()
    for opener in (lambda: open_checked(path), lambda: open_image(Sample(str(path), 1, 0))):
        with pytest.raises(DatasetError) as exc:
            opener()
        assert str(path) in str(exc.value) and ENV in str(exc.value)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * 2**20  # nothing was decoded


@pytest.mark.parametrize(("limit", "refused"), [(1000, True), (8191, True), (8192, False),
                                                (10**9, False)])
def test_the_pixel_limit_is_configurable(limit, refused, tmp_path, monkeypatch):
    path = write_jpg(tmp_path / "a.jpg", size=(64, 128))  # 8192 pixels
    monkeypatch.setenv(ENV, str(limit))
    if refused:
        with pytest.raises(DatasetError, match="over the limit"):
            open_image(Sample(str(path), 1, 0))
    else:
        assert open_image(Sample(str(path), 1, 0)).size == (64, 128)


def test_a_limit_above_pils_own_is_honoured(tmp_path, monkeypatch):
    """A configured limit above PIL's own (an error above ~179 Mpx) lets the header through,
    also when PIL's limit is at its default."""
    path = tmp_path / "big.png"
    path.write_bytes(png_header(15000, 15000))
    monkeypatch.setenv(ENV, str(300_000_000))
    with open_checked(path) as im:
        assert im.size == (15000, 15000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # PIL's default, as at start
    with open_checked(path) as im:
        assert im.size == (15000, 15000)


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "1.5", " "])
def test_a_bad_limit_setting_is_a_clear_error(raw, monkeypatch):
    monkeypatch.setenv(ENV, raw)
    if raw.strip():
        with pytest.raises(DatasetError, match=ENV):
            max_pixels()
    else:
        assert max_pixels() == DEFAULT_MAX_PIXELS


BAD_FILES = {"empty": b"", "text": b"not an image", "half_jpeg": None, "huge": None}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("deep", [False, True])
def test_data_check_names_each_bad_image(kind, deep, tmp_path):
    root = tmp_path / "Market-1501"
    build_market(root)
    victim = root / "query" / market_name(3, 1, 7)
    assert victim.is_file()
    data = {"half_jpeg": victim.read_bytes()[:200], "huge": jpeg_header(10000, 10000)}.get(
        kind, BAD_FILES[kind])
    victim.write_bytes(data)
    row = check_one("market1501", tmp_path, {}, deep=deep)
    named = [p for p in row["problems"] if str(victim) in p]
    if kind == "half_jpeg" and not deep:
        return  # the header opens: only a full decode sees the truncation
    assert row["status"] == "invalid" and named, row["problems"]


@pytest.mark.parametrize("where", ["bounding_box_train", "query", "bounding_box_test"])
@pytest.mark.parametrize("loop", ["self", "pair"])
def test_data_check_names_a_symlink_loop(where, loop, tmp_path):
    root = tmp_path / "Market-1501"
    build_market(root)
    a = root / where / market_name(2, 1, 900)
    if loop == "self":
        a.symlink_to(a.name)
    else:
        b = root / where / market_name(2, 1, 901)
        a.symlink_to(b.name)
        b.symlink_to(a.name)
    row = check_one("market1501", tmp_path, {})
    assert row["status"] == "invalid"
    names = {market_name(2, 1, 900), market_name(2, 1, 901)}
    assert any(where in p and "symlink" in p and any(n in p for n in names)
               for p in row["problems"]), row["problems"]


@pytest.mark.parametrize("target", ["..", ".", "../..", "self"])
def test_the_distractor_walk_stops_at_a_folder_loop(target, tmp_path):
    folder = tmp_path / "d" / "images"
    write_jpg(folder / "sub" / "0000_c1s1_000001_00.jpg")
    link = folder / "sub" / "loop"
    link.symlink_to("loop" if target == "self" else target, target_is_directory=True)
    with pytest.raises(DatasetError) as exc:
        distractor_listing_hash(folder)
    assert str(folder) in str(exc.value) and "loop" in str(exc.value)


def test_a_symlinked_folder_that_is_no_loop_is_still_walked(tmp_path):
    real = tmp_path / "elsewhere"
    write_jpg(real / "0000_c1s1_000001_00.jpg")
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "linked").symlink_to(real, target_is_directory=True)
    assert distractor_listing_hash(folder)[1] == 1
    assert Path(folder / "linked").is_dir()
