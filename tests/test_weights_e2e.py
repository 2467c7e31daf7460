"""End to end: ``run --weights`` records the weights' source and hash in the CSV, and a cached
trained model evaluates with the ImageNet file gone and the network disabled."""

from __future__ import annotations

import socket

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from toyspec import recipe, toy_spec, write_spec

from reid_bench.cli import main
from reid_bench.weights import store

# Full-width ResNet-50 (pretrained weights need the paper's network) on a handful of tiny
# synthetic images for one step: the point is where the weights come from, not accuracy.
SPEC = toy_spec("""\
rows:
  - name: IDE
    method: ide
    params: {backbone: resnet50}
    published: {market: {rank1: 70.0, mAP: 50.0}}
""", paper="wdemo", caption="weights demo", recipe=recipe(64, 32, epochs=1, batch_size=8),
    smoke="""\
smoke:
  recipe:
    input: {height: 64, width: 32, flip: false}
    backbone: {pretrained: imagenet, width: 1.0}
    train: {epochs: 1, batch_size: 8}
  dataset_options: {num_train_ids: 4, num_test_ids: 4, num_cams: 2, images_per_cam: 1,
                    queries_per_id: 1, mq_per_query: 0, num_distractors: 2, num_junk: 0}
""")


@pytest.fixture(scope="module")
def tv_resnet50(tmp_path_factory):
    """A torchvision-format ResNet-50 state dict (random weights, fc head included)."""
    import torchvision

    f = tmp_path_factory.mktemp("w") / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), f)
    return f


@pytest.fixture()
def env(no_caches):
    return write_spec(no_caches, SPEC, "papers/wdemo/table1.yaml")


def _run(spec, results, data_root, *extra):
    res = CliRunner().invoke(main, ["run", str(spec), "--smoke", "--device", "cpu",
                                    "--results-dir", str(results), "--data-root", str(data_root),
                                    *extra])
    df = pd.read_csv(results / "wdemo" / "table1.csv")
    return res, df


@pytest.mark.slow
def test_run_weights_override_is_recorded(env, tmp_path, tv_resnet50, shared_data_root):
    results = tmp_path / "results"
    res, df = _run(env, results, shared_data_root, "--weights", f"resnet50={tv_resnet50}")
    assert res.exit_code == 0, res.output
    row = df.iloc[0]
    assert row["status"] == "ok"
    assert row["weights_source"].startswith("resnet50: file (--weights)")
    assert str(tv_resnet50) in row["weights_source"]
    assert row["weights_sha256"] == store.sha256(tv_resnet50)
    assert "loaded resnet50: file (--weights)" in res.output


@pytest.mark.slow
def test_cached_model_evaluates_offline_without_the_imagenet_file(env, tmp_path, tv_resnet50,
                                                                   shared_data_root,
                                                                   monkeypatch):
    wdir = tmp_path / "wdir"
    wdir.mkdir()
    f = wdir / "resnet50.pth"
    f.write_bytes(tv_resnet50.read_bytes())
    monkeypatch.setenv(store.ENV_DIR, str(wdir))
    results = tmp_path / "results"
    res, df = _run(env, results, shared_data_root)
    assert res.exit_code == 0, res.output
    first = df.iloc[0]
    assert first["weights_source"].startswith("resnet50: file (REID_BENCH_WEIGHTS_DIR)")

    # Now: no weights file anywhere, offline, and any connection attempt is an error.
    f.unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(socket, "create_connection", no_network)
    (results / "wdemo" / "table1.csv").unlink()  # re-evaluate; the trained model is cached
    res, df = _run(env, results, shared_data_root)
    assert res.exit_code == 0, res.output
    assert "reusing trained model" in res.output
    again = df.iloc[0]
    assert again["status"] == "ok" and again["rank1"] == first["rank1"]
    # The CSV still says which weights the cached model started from.
    assert again["weights_sha256"] == first["weights_sha256"] == store.sha256(tv_resnet50)

    # Without the cache the same cell cannot start, and says why in one line.
    res, df = _run(env, tmp_path / "fresh", shared_data_root)
    assert res.exit_code == 1
    assert df.iloc[0]["status"] == "not_run"
    assert "HF_HUB_OFFLINE" in df.iloc[0]["error"]
