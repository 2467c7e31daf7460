"""Every recipe field is live: perturbing any leaf of any method's Recipe changes what the
method builds, trains with or evaluates with (``tests/liveness.py``: the built model, the
optimiser's parameter groups and hyperparameters, the schedule, the loader's sampler and
transforms, the loss on a fixed batch, the test transform and descriptor). A field the code
never reads fails here; it must be wired or removed from that method's Recipe (a spec that
sets a removed field is refused by the strict schema, with its file and line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from liveness import (
    PARAMS,
    base_recipe,
    differences,
    observe,
    params_for,
    perturbations,
    perturbed,
    stale_cache,
    tiny_dataset,
)

from reid_bench.core.registry import METHODS

# The package's own methods (a test may register a toy method such as test_tiny in the same
# session; its Recipe is the test's business, not this coverage's).
PACKAGE_METHODS = sorted(m for m in METHODS.names()
                         if METHODS.get(m).__module__.startswith("reid_bench.models."))
CASES = [(m, ".".join(leaf)) for m in PACKAGE_METHODS for leaf in perturbations(m)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("liveness-data"))


def test_every_method_has_cases():
    # The parametrisation below is generated from the registry: a method without leaves (or a
    # registry that failed to import its models) would silently test nothing.
    assert {m for m, _ in CASES} == set(PACKAGE_METHODS) and len(CASES) > 100
    assert {"ide", "fmn", "ledf", "lgeu", "deep_person", "verif_identif"} <= set(PACKAGE_METHODS)


@pytest.mark.parametrize("method", PACKAGE_METHODS)
def test_observation_is_deterministic(method, tiny, tmp_path, monkeypatch):
    # Equal recipes must give equal observations, or a "difference" below would prove nothing.
    # In two work folders: the observation does not depend on where fit works, so one base
    # observation serves every field of a method (``_base_observation``).
    r = base_recipe(method)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = observe(method, PARAMS[method], r, tiny, tmp_path / "a", monkeypatch)
    b = observe(method, PARAMS[method], r, tiny, tmp_path / "b", monkeypatch)
    assert differences(a, b) == []
    assert a["stages"], f"{method}.fit trained no stage through train_stage"


_BASE: dict[str, dict] = {}


def _base_observation(method, params, recipe, tiny, tmp_path, monkeypatch) -> dict:
    """``observe`` of an unperturbed recipe, once per (method, params, recipe) per test run:
    most fields of a method share it (test_observation_is_deterministic shows it is the same
    in any work folder)."""
    key = json.dumps([method, params, recipe], sort_keys=True, default=str)
    if key not in _BASE:
        _BASE[key] = observe(method, params, recipe, tiny, tmp_path, monkeypatch)
    return _BASE[key]


@pytest.mark.parametrize("method,field", CASES, ids=[f"{m}-{f}" for m, f in CASES])
def test_recipe_field_is_live(method, field, tiny, tmp_path, monkeypatch):
    base, new, value = perturbed(method, tuple(field.split(".")))
    params = params_for(method, field)
    a = _base_observation(method, params, base, tiny, tmp_path, monkeypatch)
    b = observe(method, params, new, tiny, tmp_path, monkeypatch)
    assert differences(a, b), (
        f"{method} recipe field {field} = {value!r} changes nothing the method builds, trains "
        "with or evaluates with: wire it, or remove it from the method's Recipe")
    # A stage cached inside fit (FMN's GRN, LEDF's verification network) must be keyed by
    # every value that changes it, or a variant would reuse the canonical stage.
    assert stale_cache(a, b) == [], f"{method} {field}: cache key misses it"


def _unused_cases():
    """(method, row params, unused leaf) for every project spec row whose method declares
    recipe keys its params leave unread (``Method.recipe_unused``)."""
    from project_specs import project_specs

    from reid_bench.engine.recipe import recipe_leaves

    seen, out = set(), []
    for spec in project_specs():
        for row in spec.rows:
            if not (row.runnable and row.method in METHODS):
                continue
            m = METHODS.get(row.method)()
            unused = m.recipe_unused(m.Params.model_validate(row.params))
            for leaf in recipe_leaves(m.Recipe):
                parts = leaf.split(".")
                if any(".".join(parts[:i]) in unused for i in range(1, len(parts) + 1)):
                    key = (row.method, repr(sorted(row.params.items())), leaf)
                    if key not in seen:
                        seen.add(key)
                        out.append((row.method, dict(row.params), leaf))
    return out


UNUSED = _unused_cases()


@pytest.mark.parametrize("method,params,field", UNUSED,
                         ids=[f"{m}-{'-'.join(map(str, p.values()))}-{f}" for m, p, f in UNUSED])
def test_recipe_unused_is_true(method, params, field, tiny, tmp_path, monkeypatch):
    # A key a method declares unread for these params (so a --variant of it skips the row)
    # must change nothing for them.
    base, new, value = perturbed(method, tuple(field.split(".")))
    p = {**params, **PARAMS[method]}
    if p.get("backbone") in ("caffenet", "vgg16"):
        # Their pooling pyramid needs a larger image than the tiny 64×32 (CaffeNet: > 67 px).
        for r in (base, new):
            r["input"] = {**r["input"], "height": 96, "width": 96}
    a = observe(method, p, base, tiny, tmp_path, monkeypatch)
    b = observe(method, p, new, tiny, tmp_path, monkeypatch)
    assert differences(a, b) == [], f"{method} {params}: {field} = {value!r} is read after all"


@pytest.mark.parametrize("paper,field", [("fmn", "test_full_size"), ("deep_person", "pad"),
                                         ("deep_person", "random_erasing")])
def test_a_field_the_method_lacks_is_refused_with_file_and_line(paper, field, tmp_path):
    # Fields removed from a method's Recipe because its code cannot use them (FMN's mask fixes
    # the test size; Deep-Person's Sec. 4.1 pipeline has no pad or erasing).
    from reid_bench.core.errors import SpecError
    from reid_bench.spec import load_spec

    src = (Path(__file__).resolve().parents[1] / "papers" / paper / "table1.yaml").read_text()
    lines = src.split("\n")
    at = next(i for i, x in enumerate(lines) if x == "  input:") + 1
    lines.insert(at, f'    {field}: {{value: 0, assumed: "x"}}')
    path = tmp_path / "papers" / paper / "table1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines))
    with pytest.raises(SpecError, match=rf"table1.yaml:{at + 1}: recipe.input.{field}: "
                                        "unknown key"):
        load_spec(path)
