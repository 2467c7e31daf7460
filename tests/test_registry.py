"""Parametrised over the registries themselves (timm-style): every registered method builds and
runs a forward pass on a tiny CPU batch with the smoke recipe of each spec row that uses it."""

from pathlib import Path

import pytest
import torch

from reid_bench.core.errors import RegistryError
from reid_bench.core.registry import DATASETS, METHODS, Registry
from reid_bench.spec import find_specs, load_spec, resolved_recipe

PAPERS = Path(__file__).resolve().parents[1] / "papers"


def _rows():
    out = []
    for f in find_specs(root=PAPERS):
        spec = load_spec(f)
        for r in spec.rows:
            if r.runnable and r.method in METHODS:
                out.append(pytest.param(spec, r, id=f"{spec.paper.id}/{spec.table.id}/{r.name}"))
    return out


@pytest.mark.parametrize("spec, row", _rows())
def test_every_spec_row_builds_and_forwards(spec, row):
    method = METHODS.get(row.method)()
    params = method.Params.model_validate(row.params)
    values, _ = resolved_recipe(spec, row, smoke=True)
    recipe = method.Recipe.model_validate(values)
    torch.manual_seed(0)
    model = method.build(params, recipe, num_classes=7).eval()
    inp = method.test_input(recipe)
    x = torch.randn(2, 3, inp.height, inp.width)
    with torch.no_grad():
        f = method.features(model, params)(x)
    assert f.ndim == 2 and f.shape[0] == 2 and torch.isfinite(f).all()


def test_every_registered_method_is_used_by_a_spec():
    used = {r.method for f in find_specs(root=PAPERS) for r in load_spec(f).rows}
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
