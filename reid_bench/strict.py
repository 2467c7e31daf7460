"""One strict, immutable pydantic base for every schema and recipe model."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are an error; instances are frozen (hashable, safe to share)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
