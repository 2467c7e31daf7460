"""The evaluation protocols a spec can name, one module each, registered in
``registry.PROTOCOLS`` (which imports every module of this package on first use).

A protocol declares what it needs and reports, and evaluates, in one class::

    @PROTOCOLS.register("oxford5k")
    class Oxford5k(Protocol):
        description = "one line for the report"
        splits = ("query", "gallery")      # dataset splits it embeds
        meta = ("oxford_gt",)              # dataset.meta keys it reads
        metrics = ("mAP",)                 # keys of reid_bench.core.metrics.METRICS it reports
        def evaluate(self, dataset, embed, ctx): ...   # -> EvalResult

``evaluate_cell`` (``eval/pipeline.py``) validates the arguments and options and checks the
declared needs before calling ``evaluate``. A new protocol is one new module here plus its test.
"""

from ._common import EvalContext, EvalResult, Protocol

__all__ = ["EvalContext", "EvalResult", "Protocol"]
