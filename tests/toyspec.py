"""The one toy table the tests run, assembled from parts a test can swap.

``toy_spec`` writes the paper/table header and joins YAML blocks: a ``datasets`` block (default:
one Market-1501 column), a ``recipe`` (default: the paper-size IDE recipe, so tests run it under
``--smoke`` with a shrunk ``smoke`` block; ``tiny_recipe`` is a recipe the ``test_tiny`` plugin
method trains in seconds without ``--smoke``) and the rows. ``tiny_rows`` writes ``test_tiny``
rows; ``write_spec`` puts a spec where ``load_spec`` expects it (``papers/<paper>/<table>.yaml``).
``cli_cmd``/``plugin_env`` run ``python -m reid_bench run`` in a subprocess with the plugin.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"
ROOT = Path(__file__).resolve().parents[1]

MARKET = """\
datasets:
  market:
    name: market1501
    eval: {protocol: market, ap: standard, distance: euclidean}
"""

def recipe(height: int = 256, width: int = 128, pretrained: str = "imagenet", *,
           source: str = "x", normalize: str | None = None, **train: float) -> str:
    """A traced ``recipe`` block: input size (and ``normalize``), backbone weights, and the
    ``train`` values (default: the paper-size IDE ``lr: 0.01, epochs: 60``), each with
    ``source``."""
    def traced(key: str, value) -> str:
        return f"    {key}: {{value: {value}, source: \"{source}\"}}\n"

    extra = traced("normalize", normalize) if normalize else ""
    return ("recipe:\n  input:\n" + traced("height", height) + traced("width", width) + extra
            + "  backbone:\n" + traced("pretrained", pretrained) + "  train:\n"
            + "".join(traced(k, v) for k, v in (train or {"lr": 0.01, "epochs": 60}).items()))


# The paper's recipe of a tiny IDE table (never trained as such: tests use its smoke block).
PAPER_RECIPE = recipe()


# The IDE row most tables here start with (the method of every paper's baseline).
IDE_A = """\
  - name: IDE A
    method: ide
    params: {backbone: resnet50}
    published: {market: {rank1: 70.0, mAP: 50.0}}
"""


def tiny_recipe(epochs: int = 3, lr: float = 0.05, batch_size: int = 64) -> str:
    """A full-tier recipe ``test_tiny`` trains in seconds on the synthetic data."""
    return recipe(32, 16, "none", source="test", normalize="none", epochs=epochs, lr=lr,
                  batch_size=batch_size)


def tiny_rows(rows: list[dict], column: str = "market") -> str:
    """``test_tiny`` rows: each ``{"name": ..., "params": {...}}`` (params optional)."""
    body = "rows:\n"
    for r in rows:
        params = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}"
                           for k, v in r.get("params", {}).items())
        body += (f"  - name: {r['name']}\n    method: test_tiny\n    params: {{{params}}}\n"
                 f"    published: {{{column}: {{rank1: 50.0, mAP: 30.0}}}}\n")
    return body


def toy_spec(rows: str, *, datasets: str = MARKET, recipe: str = PAPER_RECIPE,
             smoke: str = "", paper: str = "demo", caption: str = "toy table",
             extra: str = "") -> str:
    """A spec's YAML text: header, ``extra`` top-level keys (e.g. ``seeds: 3``), datasets,
    recipe, smoke block and rows (each block a YAML text ending in a newline)."""
    return (f"paper: {{id: {paper}, title: Demo, authors: [A], venue: V, year: 2020}}\n"
            f"table: {{id: table1, caption: {caption}}}\n"
            f"metrics: [rank1, mAP]\n{extra}{datasets}{recipe}{smoke}{rows}")


def write_spec(root: Path, text: str, name: str = "papers/demo/table1.yaml") -> Path:
    """Write ``text`` to ``root/name`` (folders created) and return the path."""
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


MARKET_PLAIN = "datasets:\n  market: {name: market1501, eval: {protocol: market}}\n"


def splits_column(key: str, splits: int | None, **options: int) -> str:
    """A dataset column ``key`` of the plugin's ``test_splits`` dataset (the synthetic one with
    a ``split`` option) at its smallest, with ``splits: N`` unless None; ``options`` are added
    to the loader's."""
    opts = {"num_train_ids": 8, "num_test_ids": 8, "num_cams": 2, "images_per_cam": 2,
            "queries_per_id": 1, "mq_per_query": 0, "num_distractors": 0, "num_junk": 0} | options
    text = ", ".join(f"{k}: {v}" for k, v in opts.items())
    return (f"  {key}:\n    name: test_splits\n" + (f"    splits: {splits}\n" if splits else "")
            + f"    options: {{{text}}}\n    eval: {{protocol: market}}\n")


def tiny_spec(root: Path, rows: list[dict], **recipe) -> Path:
    """The ``test_tiny`` table of ``rows`` on one Market-1501 column (``recipe``: the
    ``tiny_recipe`` arguments), written under ``root``."""
    return write_spec(root, toy_spec(tiny_rows(rows), datasets=MARKET_PLAIN,
                                     recipe=tiny_recipe(**recipe), caption="tiny table"))


def register_plugin() -> None:
    """Make ``test_tiny``/``test_splits`` importable and registered in this process."""
    if str(PLUGINS) not in sys.path:
        sys.path.insert(0, str(PLUGINS))
    import rb_test_methods  # noqa: F401  (registers on import)


def plugin_env(**kw: str) -> dict:
    """Environment of a ``python -m reid_bench`` subprocess that loads the test plugin (no
    fault injected unless ``REID_BENCH_FAULT`` is in ``kw``)."""
    e = dict(os.environ, REID_BENCH_PLUGINS="rb_test_methods", OMP_NUM_THREADS="1",
             PYTHONPATH=os.pathsep.join([str(ROOT), str(PLUGINS),
                                         os.environ.get("PYTHONPATH", "")]))
    e.pop("REID_BENCH_FAULT", None)
    e.update(kw)
    return e


def cli_cmd(spec: Path, results: Path, data_root: Path, *extra: str,
            smoke: bool = True) -> list[str]:
    """``python -m reid_bench run`` of ``spec`` (``--smoke`` unless told otherwise), with a
    checkpoint every epoch."""
    return [sys.executable, "-m", "reid_bench", "run", str(spec), *(["--smoke"] if smoke else []),
            "--results-dir", str(results), "--data-root", str(data_root),
            "--checkpoint-every", "1", *extra]
