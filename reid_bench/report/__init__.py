"""The report: published vs reproduced, per table (``build.build_report`` is the entry point).

spec + results CSV --``aggregate``--> view model (``view``) --``render`` / ``latex`` /
``summary``--> HTML and markdown (jinja ``templates/``), LaTeX, JSON. Beside them: ``verdicts``
(one number against the paper), ``claims`` (the paper's conclusions on our numbers), ``ledger``
(assumptions and variant runs), ``flags`` (edited / stale rows), ``plots``, ``fmt`` (how numbers
read) and ``published`` (``reid-bench published --format markdown``).
"""
