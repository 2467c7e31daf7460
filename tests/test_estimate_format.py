"""``format_estimates``: the dry-run table's exact layout (columns, alignment, notes, total)."""

from types import SimpleNamespace

from reid_bench.table.estimate import CellEstimate, Stage, format_estimates


def _cell(row, dataset, split, seed):
    return SimpleNamespace(row=SimpleNamespace(name=row), dataset=dataset, split=split, seed=seed)


def test_table_layout_notes_and_total_are_pinned():
    ests = [
        # 2 epochs × 1,000 images at 100 img/s = 20 s = 0.0056 GPU-h → "0.01".
        CellEstimate(_cell("IDE", "market", None, 0), [Stage("train", 2, 1000)], 100.0,
                     "--throughput"),
        CellEstimate(_cell("IDE", "market", None, 1), [Stage("train", 2, 1000)],
                     shared_with="t1:ide__market__s0"),
        CellEstimate(_cell("FMN long name", "cuhk03", 3, 0), problem="unknown method"),
    ]
    text, t = format_estimates("  (papers/x/t1.yaml)", ests)
    assert text.splitlines() == [
        "  (papers/x/t1.yaml)",
        "    row            dataset  split  seed   epochs  img/epoch   images  GPU-h  note",
        "    -------------  -------  -----  ----  -------  ---------  -------  -----  "
        + "-" * len("same training as t1:ide__market__s0"),  # the widest note
        "    IDE            market             0        2      1,000    2,000   0.01  "
        "100 img/s (--throughput)",
        "    IDE            market             1        2      1,000    2,000   0.00  "
        "same training as t1:ide__market__s0",
        "    FMN long name  cuhk03   3         0  unknown    unknown  unknown      –  "
        "unknown method",
        "  table total: 3 cell(s), 1 training(s), 2,000 training images (+ 1 cell(s) of "
        "unknown size); 0.01 GPU-h",
    ]
    assert abs(t.gpu_hours - 2000 / 100 / 3600) < 1e-12 and t.hours_unknown == 0


def test_total_is_unknown_when_no_cell_has_a_time():
    ests = [CellEstimate(_cell("IDE", "market", None, 0), [Stage("train", 1, 10)])]
    text, t = format_estimates("t", ests)
    assert t.timed == 0 and t.hours_unknown == 1
    # Cells and images are totalled without a throughput.
    assert text.splitlines()[-1] == ("  table total: 1 cell(s), 1 training(s), 10 training "
                                     "images; no time estimate (pass --throughput IMG_PER_S)")
    assert text.splitlines()[3].endswith("no throughput: pass --throughput")
