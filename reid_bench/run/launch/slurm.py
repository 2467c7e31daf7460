"""``--launcher slurm``: every pending cell becomes one task of a Slurm job array, submitted
with submitit (``pip install reid-bench[slurm]``).

Settings come from a site config YAML (``--site-config``, validated by ``SlurmConfig``) with
CLI flags on top. Each task runs ``run_cell_job`` → the ordinary runner on one cell (under
torchrun inside the job when ``nproc`` > 1), so all tasks write to the same results folder
through its CSV lock/atomic rename, and the per-cell lease keeps a resubmitted task off a
cell that is still running. Cells already finished with their current config are not
submitted.

Site config example::

    partition: gpu
    time: "02:00:00"     # or minutes: 120
    gpus_per_node: 1
    cpus_per_task: 8
    mem_gb: 64
    array_parallelism: 16
    account: my-lab
    setup: ["module load cuda/12.4", "source ~/venvs/reid/bin/activate"]
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ...core.errors import ReidBenchError
from ...core.strict import Strict
from ...table.plan import Cell, cells_from_keys


class SlurmConfig(Strict):
    """Slurm resources of one cell's job and of the array."""

    partition: str | None = None
    time: int = Field(60, ge=1, description="minutes per cell job")
    gpus_per_node: int = Field(1, ge=0)
    nproc: int = Field(1, ge=1, description="DDP processes per cell (torchrun inside the job)")
    cpus_per_task: int = Field(8, ge=1)
    mem_gb: int | None = Field(None, ge=1)
    array_parallelism: int = Field(16, ge=1, description="tasks of the array running at once")
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = Field(default_factory=list, description="shell lines run before a task")
    additional: dict[str, Any] = Field(default_factory=dict,
                                       description="extra sbatch options (submitit)")
    folder: str | None = None  # submitit logs/pickles; default <results-dir>/_slurm

    @field_validator("time", mode="before")
    @classmethod
    def _minutes(cls, v: Any) -> Any:
        return parse_minutes(v) if isinstance(v, str) else v


def parse_minutes(v: str) -> int:
    """'90' → 90, '1:30:00' → 90, '2-00:00:00' (days) → 2880, '45:00' (mm:ss) → 45."""
    v = v.strip()
    days = 0
    if "-" in v:
        d, v = v.split("-", 1)
        days = int(d)
    parts = [int(p) for p in v.split(":")]
    if len(parts) == 1:
        mins = parts[0]
    elif len(parts) == 2:
        mins = parts[0] + (1 if parts[1] else 0)
    else:
        mins = parts[0] * 60 + parts[1] + (1 if parts[2] else 0)
    return days * 1440 + mins


def load_site_config(path: str | Path | None, **overrides: Any) -> SlurmConfig:
    """``SlurmConfig`` from the YAML file ``path`` (optional) with non-None ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ReidBenchError(f"site config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ReidBenchError(f"site config {path}: expected a mapping of Slurm settings")
    data |= {k: v for k, v in overrides.items() if v is not None}
    from pydantic import ValidationError

    try:
        return SlurmConfig.model_validate(data)
    except ValidationError as exc:
        raise ReidBenchError(f"site config {path or '(CLI)'} is invalid:\n{exc}") from None


def executor_parameters(cfg: SlurmConfig, name: str) -> dict[str, Any]:
    """``update_parameters`` keywords for a submitit ``AutoExecutor``."""
    params: dict[str, Any] = {"name": name, "timeout_min": cfg.time, "nodes": 1,
                              "tasks_per_node": 1, "gpus_per_node": cfg.gpus_per_node,
                              "cpus_per_task": cfg.cpus_per_task,
                              "slurm_array_parallelism": cfg.array_parallelism}
    if cfg.mem_gb is not None:
        params["mem_gb"] = cfg.mem_gb
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.account:
        params["slurm_account"] = cfg.account
    if cfg.qos:
        params["slurm_qos"] = cfg.qos
    if cfg.constraint:
        params["slurm_constraint"] = cfg.constraint
    if cfg.setup:
        params["slurm_setup"] = list(cfg.setup)
    if cfg.additional:
        params["slurm_additional_parameters"] = dict(cfg.additional)
    return params


def run_cell_job(spec_path: str, ref: dict, options: dict[str, Any], nproc: int = 1) -> dict:
    """One array task: run one cell (DDP under torchrun when ``nproc`` > 1). Returns
    {"cell": <the cell's key dict>, "ok": bool, ...}."""
    if nproc > 1:
        from ...core.console import ensure
        from ...spec import load_spec
        from .torchrun import run_torchrun

        ensure(quiet=bool(options.get("quiet")))  # the launcher's lines in the task's log

        # run_torchrun records the cell failed, with the failing rank's traceback, if a rank
        # dies (docs/reliability.md).
        cell = cells_from_keys(load_spec(spec_path), [ref])[0]
        [(_, rc)] = run_torchrun(spec_path, [cell], options, nproc)
        return {"cell": ref, "ok": rc == 0, "returncode": rc}
    from .worker import run_cells

    summary = run_cells(spec_path, [ref], options)
    return {"cell": ref, "ok": summary.ok, "done": summary.done, "skipped": summary.skipped,
            "running_elsewhere": summary.running_elsewhere,
            "failed": [list(f) for f in summary.failed]}


try:  # submitit is optional (reid-bench[slurm]); without it CellJob is a plain callable
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover — exercised only where submitit is missing
    _Checkpointable = object  # type: ignore[assignment,misc]


class CellJob(_Checkpointable):
    """The array task's callable: ``run_cell_job`` as a submitit ``Checkpointable``, so a
    preempted or timed-out task is requeued for the same cell (``checkpoint``, inherited,
    resubmits this callable with the same arguments) instead of lost.

    Inside the training, submitit's preemption signal (SIGUSR2 unless
    ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise) and SIGTERM/SIGUSR1 only ask the loop to stop
    (``reid_bench.core.preempt``): it saves its checkpoint at the next step boundary, and then this
    callable hands the signal to submitit's handler, which calls ``checkpoint`` and requeues the
    task. The requeued task resumes the cell from that step."""

    def __call__(self, spec_path: str, ref: dict, options: dict[str, Any],
                 nproc: int = 1) -> dict:
        from ...core import preempt

        sig = _submitit_signal()
        with preempt.also_catching(*([sig] if sig is not None else [])):
            try:
                return run_cell_job(spec_path, ref, options, nproc)
            except preempt.Preempted as exc:
                requeue = signal.getsignal(sig) if sig is not None else None
                if not callable(requeue):
                    raise  # not under submitit: nothing requeues it, the caller says so
                logging.getLogger(__name__).warning("%s; requeueing the cell", exc)
                requeue(sig, None)  # submitit: checkpoint(), scontrol requeue, exit
                raise  # unreachable under submitit (it exits)


def _submitit_signal() -> int | None:
    """The signal submitit's job environment treats as preemption/timeout (None outside a
    submitit job or without submitit)."""
    try:
        from submitit import JobEnvironment

        return JobEnvironment._usr_sig()
    except Exception:  # noqa: BLE001 — no submitit, or an unknown signal name in the env
        return None


def submit(spec_path: str, cells: Sequence[Cell], options: dict[str, Any], cfg: SlurmConfig,
           *, cluster: str | None = None, name: str = "reid-bench") -> list[Any]:
    """Submit ``cells`` (already filtered to the pending ones) as one job array: one task per
    cell. ``cluster``: None = Slurm (or $REID_BENCH_SUBMITIT_CLUSTER), "local" / "debug" for
    submitit's local and in-process executors (tests). Returns the submitit jobs,
    in the order of ``cells``."""
    if not cells:
        return []
    try:
        import submitit
    except ImportError:
        raise ReidBenchError("--launcher slurm needs submitit: pip install 'reid-bench[slurm]'"
                             ) from None
    import os

    folder = Path(cfg.folder) if cfg.folder else Path(options["results_dir"]) / "_slurm"
    # Explicitly Slurm: submitit's auto-detection would silently fall back to local processes.
    cluster = cluster or os.environ.get("REID_BENCH_SUBMITIT_CLUSTER") or "slurm"
    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    except RuntimeError as exc:
        raise ReidBenchError(f"--launcher slurm: {exc} Run on a Slurm login node, or use "
                             "--launcher local / torchrun here.") from None
    executor.update_parameters(**executor_parameters(cfg, name))
    refs = [c.key.as_dict() for c in cells]
    n = len(refs)
    return executor.map_array(CellJob(), [str(spec_path)] * n, refs, [options] * n,
                              [cfg.nproc] * n)
