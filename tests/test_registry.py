"""Parametrised over the registries themselves (timm-style): every registered method builds and
runs a forward pass on a tiny CPU batch with the smoke recipe of each spec row that uses it."""

import pytest
import torch
from project_specs import project_specs

from reid_bench.core.errors import RegistryError
from reid_bench.core.hashing import stable_hash
from reid_bench.core.registry import DATASETS, METHODS, Registry
from reid_bench.spec import resolved_recipe


def _builds():
    """One case per distinct (method, params, smoke recipe) among the runnable rows of every
    spec: rows that build the same network (a baseline repeated across tables) are one case,
    named after its first row with the count of rows it stands for."""
    cases: dict[str, list] = {}
    for spec in project_specs():
        for r in spec.rows:
            if r.runnable and r.method in METHODS:
                method = METHODS.get(r.method)()
                params = method.Params.model_validate(r.params)
                values, _ = resolved_recipe(spec, r, smoke=True)
                recipe = method.Recipe.model_validate(values)
                key = stable_hash([r.method, params.model_dump(mode="json"),
                                   recipe.model_dump(mode="json")])
                cases.setdefault(key, [r.method, params, recipe, []])[3].append(
                    f"{spec.paper.id}/{spec.table.id}/{r.name}")
    return [pytest.param(m, p, rc, id=rows[0] + (f" (+{len(rows) - 1})" if len(rows) > 1 else ""))
            for m, p, rc, rows in cases.values()]


BUILDS = _builds()


def test_the_build_cases_cover_every_method_of_the_specs():
    used = {r.method for s in project_specs() for r in s.rows if r.runnable and r.method in METHODS}
    assert {c.values[0] for c in BUILDS} == used and len(BUILDS) >= 30


@pytest.mark.parametrize("name, params, recipe", BUILDS)
def test_every_spec_row_builds_and_forwards(name, params, recipe):
    method = METHODS.get(name)()
    torch.manual_seed(0)
    model = method.build(params, recipe, num_classes=7).eval()
    inp = method.test_input(recipe)
    x = torch.randn(2, 3, inp.height, inp.width)
    with torch.no_grad():
        f = method.features(model, params)(x)
    assert f.ndim == 2 and f.shape[0] == 2 and torch.isfinite(f).all()


def test_every_registered_method_is_used_by_a_spec():
    used = {r.method for spec in project_specs() for r in spec.rows}
    # test_* methods are the reliability tests' plugins, registered at test time.
    shipped = {m for m in METHODS.names() if not m.startswith("test_")}
    assert shipped <= used, shipped - used
    assert {"ide", "verif_identif", "fmn", "deep_person", "ledf", "lgeu"} <= shipped


def test_unknown_name_lists_valid_and_nearest():
    with pytest.raises(RegistryError) as e:
        METHODS.get("idee")
    assert "Did you mean 'ide'?" in str(e.value) and "ide" in str(e.value)
    with pytest.raises(RegistryError) as e:
        DATASETS.get("market")
    assert "market1501" in str(e.value)


def test_duplicate_name_is_an_error():
    reg = Registry("thing", "reid_bench.models")
    reg.register("a")(object())
    with pytest.raises(RegistryError):
        reg.register("a")(object())
