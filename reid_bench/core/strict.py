"""One strict, immutable pydantic base for every schema and recipe model."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are an error; instances are frozen (hashable, safe to share); a float field
    refuses inf and NaN (``.inf`` in a spec, ``--set recipe.train.lr=.inf``, ``"inf"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
