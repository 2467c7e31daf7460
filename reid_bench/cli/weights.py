"""``reid-bench weights``: list, fetch, locate and convert the pretrained weights the specs
start from. Registered on the main CLI group by ``reid_bench.cli``. The weights package (which
imports torch) is imported when a command runs, not when the CLI starts."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import click

from ..core.textable import text_table
from .deprecation import Group, old_spelling
from .errors import error_line, warn


class WeightNames(click.Choice):
    """The registered weight-set names, read when first needed (``weights.registry`` imports
    the weights package, and with it torch)."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):
        from ..weights import registry

        return registry.names()

    @choices.setter
    def choices(self, value) -> None:
        pass


def spec_needs(spec_paths: list[str] | None = None) -> dict[str, list[str]]:
    """Weight-set name → ``paper/table (n rows)`` of the specs whose runnable rows start from
    its ImageNet weights (full recipe; the smoke tier uses none)."""
    from ..core.errors import RegistryError
    from ..core.registry import METHODS
    from ..spec import find_specs, load_spec, resolved_recipe

    need: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for f in find_specs(spec_paths):
        spec = load_spec(f)
        for row in spec.rows:
            if not row.runnable:
                continue
            values, _ = resolved_recipe(spec, row, smoke=False)
            if (values.get("backbone") or {}).get("pretrained", "imagenet") != "imagenet":
                continue
            try:
                method = METHODS.get(row.method)()
            except RegistryError:  # a row whose method is not written yet needs nothing
                continue
            name = method.backbone_name(method.Params.model_validate(row.params))
            need[name][f"{spec.paper.id}/{spec.table.id}"] += 1
    return {n: [f"{t} ({k} row{'s' if k > 1 else ''})" for t, k in tables.items()]
            for n, tables in need.items()}


@click.group("weights", cls=Group)
def weights() -> None:
    """Pretrained ImageNet weights: where they are, how to get them.

    \b
    Lookup order for a backbone's ImageNet weights: `run --weights NAME=PATH`,
    $REID_BENCH_WEIGHTS_DIR/<NAME>.safetensors|.pth|<library file name>, the torch hub /
    Hugging Face caches (and, for CaffeNet, <cache dir>/weights: $REID_BENCH_CACHE, else
    ~/.cache/reid-bench), then a download.
    """


@weights.command("list")
@click.argument("spec_paths", nargs=-1, type=click.Path(), metavar="[SPECS]...")
@old_spelling("--specs", "the SPECS arguments", "spec_paths", multiple=True, type=click.Path())
def list_(spec_paths):
    """Each weight set: which SPECS (spec files or folders; default: papers/) need it, where it
    is looked for, whether it is present. Runs offline."""
    from ..weights import registry, store

    try:
        needs = spec_needs(list(spec_paths) or None)
    except Exception as exc:  # a broken spec must not hide the weights table
        needs = {}
        warn(f"could not scan specs: {exc}")
    sets = {name: (registry.get(name), store.locate(name)) for name in registry.names()}
    heads = text_table(None, [[name, "present" if hit else "MISSING",
                               f"{ws.library} {ws.tag} — {ws.title}"]
                              for name, (ws, hit) in sets.items()])
    for head, (name, (ws, hit)) in zip(heads, sets.items(), strict=True):
        click.echo(head)
        click.echo(f"          input: {ws.preprocess().describe()}")
        used = needs.get(name)
        click.echo(f"          needed by: {', '.join(used) if used else '-'}")
        where = [["*" if hit and path == hit.path else ("+" if path.is_file() else " "), how,
                  path] for how, path in store.candidates(name)]
        for line in text_table(None, where, indent="        ", sep=" "):
            click.echo(line)
        if not hit:
            click.echo(f"          {store.fixes(name)}")


@weights.command("path")
@click.argument("name", type=WeightNames())
def path(name):
    """Print the file NAME's ImageNet weights load from (exit 1 if absent)."""
    from ..weights import store

    hit = store.locate(name)
    if hit is None:
        error_line(f"{name}: not found; {store.fixes(name)}")
        sys.exit(1)
    click.echo(str(hit.path))


@weights.command("fetch")
@click.argument("names", nargs=-1, type=WeightNames())
def fetch(names):
    """Download NAMES (default: all) through timm / torchvision into their normal caches."""
    from ..core.console import configure
    from ..weights import registry, store

    # store.fetch logs each download: shown here as the command's progress.
    click.get_current_context().call_on_close(configure(click.echo))
    failed = 0
    for name in names or registry.names():
        try:
            hit = store.fetch(name)
            click.echo(f"{name}: {hit.path}")
        except store.WeightsError as exc:
            failed += 1
            error_line(str(exc))
    if failed:
        sys.exit(1)


@weights.command("convert")
@click.argument("name", type=click.Choice(["caffenet"]))
@click.argument("caffemodel", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output .safetensors (default: <cache dir>/weights/caffenet.safetensors, "
                   "the cache dir being $REID_BENCH_CACHE, else ~/.cache/reid-bench: where "
                   "`run` finds it).")
@click.option("--no-verify", is_flag=True,
              help="Convert even if the file's sha1 is not the BVLC reference model's.")
def convert(name, caffemodel, out, no_verify):
    """Convert CAFFEMODEL, the BVLC reference CaffeNet (bvlc_reference_caffenet.caffemodel),
    into a safetensors state dict of our CaffeNet (NAME: caffenet, the one set converted),
    checked strictly against the network."""
    from ..weights import registry, store
    from ..weights.caffe import convert_caffenet

    dest = Path(out) if out else store.own_cache_dir() / f"{name}.safetensors"
    done = convert_caffenet(caffemodel, dest,
                            expected_sha1=None if no_verify else registry.BVLC_CAFFENET_SHA1)
    click.echo(f"{name}: wrote {done} (sha256 {store.sha256(done)})")
