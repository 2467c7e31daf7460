"""Names are ids: spec names that reach a file name are validated at load, cell ids are
injective, and every path a cell writes or deletes stays inside the results folder.

The hostile names are generated (traversal forms × where they appear); the end-to-end test runs
a hostile spec under a scratch root and lists every file created."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from toyspec import register_plugin, tiny_recipe, tiny_spec, toy_spec, write_spec

from reid_bench.cli import main
from reid_bench.core.errors import ResultsError, SpecError
from reid_bench.core.safepath import (
    ROW_NAME_MAX,
    UnsafePathError,
    check_id,
    check_row_name,
    inside,
    row_slug,
)
from reid_bench.spec import load_spec
from reid_bench.store import lease, results
from reid_bench.table.plan import plan

# Traversal forms a hostile spec (or CSV) may use: each must either be refused or end up as a
# harmless single file-name component.
HOSTILE = {
    "dotdot": "x/../../../../escaped",
    "dotdot_only": "..",
    "dot": ".",
    "absolute": "/tmp/i27a-escaped",
    "home": "~/escaped",
    "backslash": "x\\..\\..\\escaped",
    "nul": "x\0escaped",
    "newline": "x\nescaped",
    "fullwidth_solidus": "x\uff0f..\uff0fescaped",  # ／
    "one_dot_leader": "\u2024\u2024/escaped",  # ․․
    "greek_omicron": "\u039furs",  # Οurs, looks like Ours
    "cyrillic_only": "\u041e\u0443\u0440\u0441",  # no ASCII letter at all
    "percent": "%2e%2e%2fescaped",
    "long": "a" * 300,
    "long_dotdot_at_limit": "../" * 33 + "z",  # ROW_NAME_MAX characters: accepted
    "long_words": "Ours " * 40,
}


def _yaml(s: str) -> str:
    return json.dumps(s)  # a JSON string is a YAML double-quoted scalar (\u escapes included)


# ------------------------------------------------------------------ the rules, generated cases

@pytest.mark.parametrize("form", sorted(HOSTILE))
def test_a_hostile_column_id_or_dataset_name_is_refused(form):
    assert check_id(HOSTILE[form]) is not None


@pytest.mark.parametrize("form", sorted(HOSTILE))
def test_a_row_name_is_refused_or_its_slug_is_one_safe_component(form, tmp_path):
    name = HOSTILE[form]
    if check_row_name(name) is None:
        slug = row_slug(name)
        assert slug and set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
        assert len(slug) <= ROW_NAME_MAX
        cid = results.cell_id(name, "market", 0, "smoke", 3, "set:x=1;subset")
        assert inside(tmp_path, tmp_path / f".work-{cid}").parent == tmp_path.resolve()
    else:
        with pytest.raises(ResultsError):
            results.cell_id(name, "market", 0)


@pytest.mark.parametrize("form", sorted(HOSTILE))
@pytest.mark.parametrize("where", ["prefix", "suffix", "joined"])
def test_inside_refuses_every_escape(form, where, tmp_path):
    name = HOSTILE[form]
    path = {"prefix": tmp_path / name, "suffix": tmp_path / f"{name}.json",
            "joined": tmp_path / "t" / f".{name}.running.lock"}[where]
    try:
        got = inside(tmp_path, path)
    except UnsafePathError:
        return
    assert got == tmp_path.resolve() or tmp_path.resolve() in got.parents


def test_inside_follows_symlinks(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "link").symlink_to(tmp_path / "out")
    with pytest.raises(UnsafePathError, match="outside"):
        inside(tmp_path / "r", tmp_path / "r" / "link" / "cell.json")
    with pytest.raises(UnsafePathError):  # a paper folder that is a symlink out
        results.cell_dir(tmp_path / "r", "link", "table1")
    with pytest.raises(UnsafePathError):
        results.table_csv(tmp_path / "r", "link", "table1")
    assert lease.lease_path(tmp_path / "r", "a__b__s0").name == ".a__b__s0.running.lock"


def test_cell_ids_are_injective():
    """Distinct valid keys → distinct ids, over generated row names (slug-distinct, as the
    spec guarantees), column ids, splits, seeds, tiers and variants."""
    rows = ["Ours", "Ours 2", "Ours (I)", "a-b", "A B C", "x1"]
    cols = ["market", "cuhk03", "cuhk03_labeled", "s", "market_mq"]
    keys = list(itertools.product(rows, cols, [None, 0, 1, 10], [0, 1, 10], results.TIERS,
                                  ["", "subset", "set:train.lr=0.1", "set:train.lr=0.1;subset"]))
    ids = {results.cell_id(r, c, seed, t, split, v) for r, c, split, seed, t, v in keys}
    assert len(ids) == len(keys)
    assert all(os.sep not in i and ".." not in i and len(i) < 200 for i in ids)


# ------------------------------------------------------------------ the spec

def _spec(rows: list[str], column: str = "market", name: str = "market1501") -> str:
    body = "rows:\n" + "".join(
        f"  - name: {_yaml(r)}\n    method: test_tiny\n    params: {{}}\n"
        f"    published: {{{_yaml(column)}: {{rank1: 50.0, mAP: 30.0}}}}\n" for r in rows)
    datasets = (f"datasets:\n  {_yaml(column)}: {{name: {_yaml(name)}, "
                "eval: {protocol: market}}\n")
    return toy_spec(body, datasets=datasets, recipe=tiny_recipe(epochs=1))


@pytest.mark.parametrize("form", sorted(HOSTILE))
@pytest.mark.parametrize("where", ["column", "dataset_name"])
def test_spec_refuses_a_hostile_column_id_or_dataset_name_with_file_line(form, where,
                                                                         tmp_path):
    register_plugin()
    kw = {"column": HOSTILE[form]} if where == "column" else {"name": HOSTILE[form]}
    path = write_spec(tmp_path, _spec(["Ours"], **kw))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert f"{path}:" in str(exc.value)
    assert ("column id" if where == "column" else "dataset name") in str(exc.value)


# Pairs of distinct names with one slug: punctuation, case, spacing, non-ASCII.
COLLIDING = [("CaffeNet I", "CaffeNet (I)"), ("Ours", "Ours+"), ("Ours", "ours"),
             ("ResNet-50", "ResNet 50"), ("a/b", "a\\b"), ("x/../../escaped", "x\\..\\escaped"),
             ("Ours", "Ours \u03b1"), ("A+B", "A & B")]


@pytest.mark.parametrize(("first", "second"), COLLIDING)
def test_rows_sharing_a_slug_are_refused_naming_both(first, second, tmp_path):
    register_plugin()
    path = write_spec(tmp_path, _spec(["Base", first, second]))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    msg = str(exc.value)
    # file:line of the second row, and the first row named with its own line
    text = path.read_text().splitlines()
    line2 = next(i for i, t in enumerate(text, 1) if t.startswith(f"  - name: {_yaml(second)}"))
    line1 = next(i for i, t in enumerate(text, 1) if t.startswith(f"  - name: {_yaml(first)}"))
    assert f"{path}:{line2}: rows.2.name:" in msg
    assert repr(first) in msg and repr(second) in msg and f"line {line1}" in msg


# ------------------------------------------------------------------ end to end

def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} | {p for p in root.parent.glob("*escaped*")}


@pytest.mark.slow
def test_a_hostile_spec_writes_nothing_outside_the_results_folder(tmp_path, monkeypatch):
    """A spec with every accepted hostile row name (slug-distinct) runs under --smoke; every
    file created lies inside the results folder or the cache folder. The refused forms are
    refused by validate and run with file:line, and write nothing at all."""
    register_plugin()
    scratch = tmp_path / "scratch"
    res, cache, data = scratch / "deep" / "results", tmp_path / "cache", tmp_path / "data"
    monkeypatch.setenv("REID_BENCH_CACHE", str(cache))
    accepted, slugs = [], set()
    for name in HOSTILE.values():
        if check_row_name(name) is None and row_slug(name) not in slugs:
            accepted.append(name)
            slugs.add(row_slug(name))
    assert len(accepted) >= 6, accepted
    spec = write_spec(tmp_path, _spec(accepted))
    before = _files(tmp_path)
    run = ["run", str(spec), "--smoke", "--results-dir", str(res), "--data-root", str(data)]
    out = CliRunner().invoke(main, ["validate", str(spec)])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(main, run)
    assert out.exit_code == 0, out.output
    created = _files(tmp_path) - before
    outside = [p for p in created
               if not (p.resolve() == res.resolve() or res.resolve() in p.resolve().parents
                       or cache.resolve() in p.resolve().parents or p.resolve() == cache
                       or p.resolve() in {res.parent, res.parent.parent})]
    assert not outside, outside
    assert not Path("/tmp/i27a-escaped").exists()
    cells = {c.id for c in plan(load_spec(spec), smoke=True)}
    jsons = {p.stem for p in (res / "demo" / "table1").glob("*.json")}
    assert jsons == cells and len(cells) == len(accepted)  # one file per row: no overwrite

    # Each refused form, as a row name or a column id: validate and run refuse it naming
    # the file and line, and nothing is written.
    refused = [n for n in HOSTILE.values() if check_row_name(n) is not None]
    for i, bad in enumerate(refused + list(HOSTILE.values())):
        text = (_spec(["Ours", bad]) if i < len(refused) else _spec(["Ours"], column=bad))
        spec = write_spec(tmp_path, text, name=f"hostile{i}/demo/table1.yaml")
        before = _files(tmp_path)
        for cmd in (["validate", str(spec)],
                    ["run", str(spec), "--smoke", "--results-dir", str(res / f"h{i}"),
                     "--data-root", str(data)]):
            out = CliRunner().invoke(main, cmd)
            assert out.exit_code != 0 and f"{spec}:" in out.output, (bad, out.output)
        assert _files(tmp_path) == before, bad


def test_the_runtime_guard_refuses_what_the_spec_check_would(tmp_path):
    """Defence in depth: a Spec that skipped validation (hostile column id) cannot make the
    runner write outside: the cell id is refused before any lease, JSON or work folder."""
    from reid_bench.run.runner import Runner, RunOptions

    register_plugin()
    spec = load_spec(write_spec(tmp_path, _spec(["Ours"])))
    col = spec.datasets["market"]
    evil = spec.model_copy(update={"datasets": {"x/../../../../escaped": col}})
    cells = plan(evil, smoke=True)
    res = tmp_path / "res"
    before = _files(tmp_path)
    with pytest.raises(ResultsError, match="not an allowed id"):
        Runner(evil, RunOptions(results_dir=res, data_root=tmp_path / "d", smoke=True)).run(cells)
    assert {p for p in _files(tmp_path) - before if res not in p.parents and p != res} == set()


def test_two_keys_sharing_a_cell_id_are_refused_before_anything_runs(tmp_path, monkeypatch):
    """Variants are spelled into the id as a short hash: a clash (forced here) with a key in
    the CSV, or within one run, is refused before any cell runs."""
    from reid_bench.run.runner import Runner, RunOptions
    from reid_bench.table.plan import CellKey

    register_plugin()
    spec = load_spec(write_spec(tmp_path, _spec(["Ours"])))
    res = tmp_path / "res"
    csv = results.table_csv(res, "demo", "table1")
    cells = plan(spec, smoke=True, variant="set:train.lr=0.1")
    other = CellKey("Ours", "market", None, 0, "smoke", "set:train.lr=0.2")
    monkeypatch.setattr(results, "cell_id", lambda *a, **k: "ours__market__s0__smoke__vclash")
    results.refuse_id_clashes(csv, [cells[0].key])  # alone: fine
    with pytest.raises(ResultsError, match="share the cell id"):
        results.refuse_id_clashes(csv, [cells[0].key, other])
    results.upsert_row(csv, {"paper": "demo", "table": "table1", **other._asdict(),
                             "status": "ok", "cell_id": str(other)})
    before = _files(tmp_path)
    with pytest.raises(ResultsError, match="share the cell id"):
        Runner(spec, RunOptions(results_dir=res, data_root=tmp_path / "d", smoke=True)).run(cells)
    assert _files(tmp_path) == before


@pytest.mark.parametrize("where", ["results", "results/report", "a/../results"])
def test_relative_folders_resolve_against_the_working_directory(where, tmp_path, monkeypatch):
    """The README runs `reid-bench run …` and `reid-bench report` with their relative defaults
    (``results``, ``results/report``): the checked path is the one the filesystem opens, not
    the folder joined onto itself."""
    monkeypatch.chdir(tmp_path)
    root = Path(where)
    for name in ("x.html", "fmn/table5.csv", ".work-a__market__s0"):
        assert inside(root, root / name) == (tmp_path / where / name).resolve()
    cells = results.cell_dir(root, "fmn", "table5")
    assert lease.lease_path(cells, "a__market__s0").resolve() == \
        (tmp_path / where / "fmn" / "table5" / ".a__market__s0.running.lock").resolve()


def test_report_into_a_relative_folder(tmp_path, monkeypatch):
    """`reid-bench report` with its default ``--out results/report`` (relative) writes there."""
    from reid_bench.report.build import build_report

    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, [{"name": "a"}])
    index = build_report(Path("results"), Path("results") / "report", [str(spec)])
    assert Path(index).resolve() == (tmp_path / "results" / "report" / "index.html").resolve()
    assert (tmp_path / "results" / "report" / "index.html").is_file()
