"""reid-bench: re-run a person re-identification paper's table and compare it, number by number."""

__version__ = "0.1.0"
