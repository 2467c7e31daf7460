"""Paper-table specs: YAML → validated, typed ``Spec`` objects.

One module per job: ``schema`` (the pydantic models), ``load`` (reading a file, with
``messages`` for its errors and ``checks`` for the cross-checks), ``traced`` (provenance of
traced values), ``recipes`` (a row's merged recipe) and ``discover`` (finding spec files).
"""

from .discover import find_specs, specs_by_table
from .load import load_spec
from .recipes import deep_merge, resolved_recipe
from .schema import (
    METRIC_NAMES,
    BestClaim,
    Claim,
    DatasetColumn,
    EvalOverrides,
    EvalSettings,
    ImprovementClaim,
    OrderingClaim,
    PaperInfo,
    RerankSettings,
    Row,
    SmokeSettings,
    Spec,
    TableInfo,
    TrainSource,
    claim_rows,
)
from .traced import TRACED_KEYS, strip_traced_settings, untrace

__all__ = [
    "METRIC_NAMES", "TRACED_KEYS", "BestClaim", "Claim", "DatasetColumn", "EvalOverrides",
    "EvalSettings", "ImprovementClaim", "OrderingClaim", "PaperInfo", "RerankSettings", "Row",
    "SmokeSettings", "Spec", "TableInfo", "TrainSource", "claim_rows", "deep_merge",
    "find_specs", "load_spec", "specs_by_table", "resolved_recipe", "strip_traced_settings", "untrace",
]
