"""Names are ids: the spec names that become file names of the results folder.

A row name's slug (``safepath.row_slug``) and a column id are parts of every cell id
(``results.cell_id``): the cell's JSON, its lease and its work folder. So column ids and
dataset names are restricted to ``safepath.ID_PATTERN``, row names to printable text with a
non-empty slug, and two rows whose names share a slug (``CaffeNet I`` beside ``CaffeNet (I)``)
are an error naming both — otherwise their cells would share one JSON file and one lease.
"""

from __future__ import annotations

from ..core.safepath import check_id, check_row_name, row_slug
from ..core.yamlio import line_of
from .schema import Spec


def check_names(spec: Spec, lines: dict) -> list[tuple]:
    """``(key path, message)`` for every column id, dataset name or row name that may not
    become a file name, and for every pair of rows whose names share a slug."""
    errors: list[tuple] = []
    for ds, col in spec.datasets.items():
        why = check_id(ds)
        if why:
            errors.append((("datasets", ds), f"column id: {why}"))
        named = [(("name",), col.name), (("smoke_standin",), col.smoke_standin)]
        if col.train is not None:
            named.append((("train", "name"), col.train.name))
        for kp, name in named:
            why = None if name is None else check_id(name)
            if why:
                errors.append((("datasets", ds, *kp), f"dataset name: {why}"))
    seen: dict[str, int] = {}
    for i, row in enumerate(spec.rows):
        why = check_row_name(row.name)
        if why:
            errors.append((("rows", i, "name"), why))
            continue
        slug = row_slug(row.name)
        if slug in seen:
            j = seen[slug]
            first = spec.rows[j].name
            if first != row.name:  # an exact duplicate is check_rows' error
                errors.append((("rows", i, "name"),
                               f"row {row.name!r} and row {first!r} (rows.{j}, line "
                               f"{line_of(lines, ('rows', j, 'name'))}) share the file-name "
                               f"part {slug!r}: their cells would overwrite each other. "
                               "Rename one so the names differ in letters or digits"))
        else:
            seen[slug] = i
    return errors
