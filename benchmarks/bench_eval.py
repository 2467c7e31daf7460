"""Evaluation benchmarks: ours vs the peers, side by side, each run in a fresh process.

Run:  pytest benchmarks/bench_eval.py --benchmark-only -s   (or ``nox -s bench``)

Every measurement is a fresh ``python benchmarks/bench_eval.py worker ...`` process that loads
the cached inputs, times only the call under test (``time.perf_counter``) and reports its peak
RSS (``ru_maxrss``, inputs included). pytest-benchmark records the process wall time; the
call time, peak memory and parity go into ``extra_info`` and the side-by-side table printed
at the end of the session (see conftest.py). Peers come from PyPI into a temporary folder
(benchmarks/peers.py); a peer that cannot be installed is skipped with the reason.

Evaluation is measured over a model-quality sweep (``benchmarks.data.QUALITIES``): per quality,
fast-reid's Cython ``evaluate_cy`` (1 thread), ours at 1 and at 2 threads run interleaved,
``REID_BENCH_PAIRS`` times, with parity asserted in every run. Re-ranking runs ours (1 thread),
the reference and ours (2 threads) interleaved, parity asserted.

Environment: REID_BENCH_PEERS_DIR (peer install folder, default <tmp>/reid_bench_peers),
REID_BENCH_SLOW_PEERS=1 (also time the peers' pure-Python evaluate_rank, ~100 s each, and
fast-reid's re-ranking, identical to torchreid's), REID_BENCH_SKIP_50K=1,
REID_BENCH_500K_DIM (feature size of the streamed 500k run, default 2048),
REID_BENCH_THREADS (torch threads in the workers; default 1, 0 = torch's choice),
REID_BENCH_PAIRS (interleaved runs per quality, default 2).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

RESULTS: list[dict] = []  # read by conftest.py's terminal summary


def _peak_gb() -> float:
    """Peak RSS of this process in GiB. VmHWM belongs to the address space, so it restarts at
    exec; ru_maxrss would carry over the forking parent's RSS (Linux keeps it across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB → GiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ---------------------------------------------------------------- worker (fresh process) ----

def _worker(task: str, impl: str, data: str, out: str) -> None:
    import torch

    # One thread by default: the peers are single-threaded, and on a busy shared machine torch's
    # spinning worker threads are slower than one thread. REID_BENCH_THREADS=0 keeps torch's choice.
    threads = int(os.environ.get("REID_BENCH_THREADS", "1"))
    if threads > 0:
        torch.set_num_threads(threads)

    d = Path(data)
    res: dict = {"task": task, "impl": impl}
    if task == "eval":
        D = np.load(d / "distmat.npy")
        ids = np.load(d / "ids.npz")
        args = (D, ids["qp"], ids["gp"], ids["qc"], ids["gc"])
        res["rss_inputs_gb"] = _peak_gb()
        if impl == "ours":
            from reid_bench.eval import evaluate_rank
            # warm-up: loads the compiled kernel from numba's disk cache (compiles it on the
            # very first run); reported separately as warmup_s
            t = time.perf_counter()
            evaluate_rank(D[:8, :64], *(a[:8] if i % 2 == 0 else a[:64] for i, a in enumerate(args[1:])))
            res["warmup_s"] = time.perf_counter() - t
            t, c = time.perf_counter(), time.process_time()
            r = evaluate_rank(*args, max_rank=50, return_details=True)
            res["seconds"], res["cpu_seconds"] = time.perf_counter() - t, time.process_time() - c
            cmc, mAP, ap = r.cmc, r.mAP, r.ap[~np.isnan(r.ap)]
        else:
            import peers
            name, kind = impl.split(":")
            p = peers.prepare(os.environ["REID_BENCH_PEERS_DIR"])[name]
            fn = peers.load_rank_cy(p) if kind == "cython" else peers.load_rank_py(p)
            t, c = time.perf_counter(), time.process_time()
            out_ = fn(*args, 50)
            res["seconds"], res["cpu_seconds"] = time.perf_counter() - t, time.process_time() - c
            cmc, ap = out_[0], out_[1]
            mAP = float(np.mean(ap))
        res["cmc"] = np.asarray(cmc, dtype=np.float64).tolist()
        res["mAP"] = float(mAP)
        res["threads"] = torch.get_num_threads()
        np.save(out + "_ap.npy", np.asarray(ap, dtype=np.float64))  # per valid query, in order
    elif task.startswith("rerank"):
        qg, qq, gg = (np.load(d / f"{k}.npy") for k in ("qg", "qq", "gg"))
        res["rss_inputs_gb"] = _peak_gb()
        if impl == "ours":
            from reid_bench.eval import re_rank
            re_rank(qg[:4, :40], qq[:4, :4], gg[:40, :40])  # warm-up: load the compiled kernels
            t, c = time.perf_counter(), time.process_time()
            o = re_rank(qg, qq, gg, k1=20, k2=6, lambda_value=0.3)
        else:
            import peers
            p = peers.prepare(os.environ["REID_BENCH_PEERS_DIR"])[impl.split(":")[0]]
            fn = peers.load_rerank(p)
            t, c = time.perf_counter(), time.process_time()
            o = fn(qg, qq, gg, k1=20, k2=6, lambda_value=0.3)
        res["seconds"], res["cpu_seconds"] = time.perf_counter() - t, time.process_time() - c
        if task == "rerank":
            np.save(out + ".npy", np.asarray(o, dtype=np.float32))
    elif task == "stream500k":
        from benchmarks.data import NUM_G, market_like
        from reid_bench.eval import StreamingRankEvaluator, compute_distance, relevance_from_ids
        dim = int(os.environ.get("REID_BENCH_500K_DIM", "2048"))
        n_dis, chunk = 500_000, 20_000
        qf, gf, qp, gp, qc, gc = market_like(dim=dim, noise=3.0)
        res["rss_inputs_gb"] = _peak_gb()
        t = time.perf_counter()
        ngal = NUM_G + n_dis
        allp = torch.cat([torch.from_numpy(gp), torch.zeros(n_dis, dtype=torch.long)])
        allc = torch.cat([torch.from_numpy(gc), torch.zeros(n_dis, dtype=torch.long)])
        rel = relevance_from_ids(torch.from_numpy(qp), torch.from_numpy(qc), allp, allc)
        Dg = compute_distance(qf, gf)
        ev = StreamingRankEvaluator(rel, Dg[rel.match_q, rel.match_g])
        ev.add(Dg, 0)
        del Dg
        gen = torch.Generator().manual_seed(1)
        scale = float((3.0 ** 2 + 1.16) ** 0.5)  # same per-dimension spread as real images
        for s in range(0, n_dis, chunk):
            cf = torch.randn(min(chunk, n_dis - s), dim, generator=gen) * scale
            ev.add(compute_distance(qf, cf), NUM_G + s)
        r = ev.result(50, "standard")
        res["seconds"] = time.perf_counter() - t
        res.update(cmc=r.cmc.tolist(), mAP=r.mAP, gallery=ngal, dim=dim)
    res["peak_gb"] = _peak_gb()
    Path(out + ".json").write_text(json.dumps(res))


# ---------------------------------------------------------------- fixtures / helpers ---------

@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench_eval")


@pytest.fixture(scope="session")
def peer_set():
    from benchmarks import peers
    root = os.environ.setdefault("REID_BENCH_PEERS_DIR", str(Path(tempfile.gettempdir()) / "reid_bench_peers"))
    return peers.prepare(root)


def _eval_data(workdir, quality: str) -> Path:
    """Market-size distance matrix (3,368 × 15,913 from 2048-d features) and ids, one model
    quality of ``benchmarks.data.QUALITIES``; cached for the session."""
    from benchmarks.data import QUALITIES, market_like
    from reid_bench.eval import compute_distance
    d = workdir / f"eval_{quality}"
    if not d.exists():
        d.mkdir()
        qf, gf, qp, gp, qc, gc = market_like(noise=QUALITIES[quality])
        np.save(d / "distmat.npy", compute_distance(qf, gf).numpy())
        np.savez(d / "ids.npz", qp=qp, gp=gp, qc=qc, gc=gc)
    return d


@pytest.fixture(scope="session")
def market_eval_data(workdir):
    return _eval_data(workdir, "strong")


def _rerank_data(workdir, name, nq, ng, dim):
    from benchmarks.data import market_like
    from reid_bench.eval import compute_distance
    d = workdir / name
    d.mkdir()
    qf, gf, *_ = market_like(num_q=nq, num_g=ng, dim=dim, noise=3.0, num_distractors=ng // 6)
    for k, (a, b) in {"qg": (qf, gf), "qq": (qf, qf), "gg": (gf, gf)}.items():
        np.save(d / f"{k}.npy", compute_distance(a, b).numpy())
    return d


@pytest.fixture(scope="session")
def rerank_data(workdir):
    return _rerank_data(workdir, "rerank", 3368, 15913, 256)  # N = 19,281; 256-d: see the 50k note


def _spawn(task, impl, data, threads: int | None = None) -> dict:
    """Run one worker in a fresh process; return its JSON result (plus the load average)."""
    out = str(Path(data) / f"out_{impl.replace(':', '_')}")
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{HERE}")
    if threads is not None:
        env.update(REID_BENCH_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(HERE / "bench_eval.py"), "worker", task, impl, str(data), out]
    load = os.getloadavg()[0]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{impl} worker failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    res = json.loads(Path(out + ".json").read_text())
    res["load1"] = load
    return res


def run_worker(benchmark, task, impl, data, label, **extra):
    box = {}

    def call():
        box["res"] = _spawn(task, impl, data)

    benchmark.pedantic(call, rounds=1, iterations=1)
    res = box["res"]
    res.update(label=label, **extra)
    benchmark.extra_info.update({k: v for k, v in res.items() if k != "cmc"})
    RESULTS.append(res)
    return res


# ---------------------------------------------------------------- evaluation ------------------

QUALITY_PAIRS = int(os.environ.get("REID_BENCH_PAIRS", "2"))


def _same_metrics(a: dict, b: dict) -> float:
    """Largest |difference| of CMC and mAP between two workers' results."""
    return max(float(np.max(np.abs(np.array(a["cmc"]) - np.array(b["cmc"])))), abs(a["mAP"] - b["mAP"]))


def _tied_queries(data: Path, rows: np.ndarray) -> np.ndarray:
    """Of the valid-query positions ``rows``, those whose distance row has an exact tie between
    a true match and another valid (non-junk) item: the only place where the tie rules differ
    (ours: stable, lower gallery index first; fast-reid: np.argsort's unstable default)."""
    D = np.load(data / "distmat.npy", mmap_mode="r")
    ids = np.load(data / "ids.npz")
    qp, gp, qc, gc = ids["qp"], ids["gp"], ids["qc"], ids["gc"]
    valid_q = np.flatnonzero([((gp == p) & (gc != c)).any() for p, c in zip(qp, qc, strict=True)])
    tied = []
    for v in rows:
        q = valid_q[v]
        row = np.asarray(D[q])
        keep = ~(((gp == qp[q]) & (gc == qc[q])) | (gp == -1))
        match_d = row[(gp == qp[q]) & keep]
        vals, counts = np.unique(row[keep], return_counts=True)
        if np.isin(match_d, vals[counts > 1]).any():
            tied.append(v)
    return np.asarray(tied, dtype=np.int64)


def _check_eval_parity(data: Path, peer: dict, ours: dict) -> dict:
    """CMC/mAP of ours against the peer's: per query AP equal within 1e-6 except on queries with
    an exact match/non-match distance tie (where only the order among equal distances differs);
    the aggregate difference is bounded by those queries. Returns the parity figures."""
    a = np.load(str(data / "out_fastreid_cython") + "_ap.npy")
    b = np.load(str(data / "out_ours") + "_ap.npy")
    assert a.shape == b.shape, "different numbers of valid queries"
    differ = np.flatnonzero(np.abs(a - b) > 1e-6)
    tied = _tied_queries(data, differ) if differ.size else differ
    assert set(differ.tolist()) <= set(tied.tolist()), \
        f"queries {sorted(set(differ.tolist()) - set(tied.tolist()))[:10]} differ without a tie"
    diff = _same_metrics(peer, ours)
    assert diff <= 1e-6 + differ.size / a.size, f"CMC/mAP differ by {diff:.2e}"
    return {"max_diff": diff, "tie_queries": int(differ.size), "valid_queries": int(a.size)}


@pytest.mark.parametrize("quality", ["strong", "mid", "weak", "near_random"])
def test_eval_quality_sweep(benchmark, workdir, peer_set, quality):
    """Ours (1 and 2 threads) against fast-reid's single-threaded Cython ``evaluate_cy`` on one
    model quality. The three run interleaved in fresh processes, ``REID_BENCH_PAIRS`` times, so
    each ratio compares runs made within seconds of each other on a shared machine; CMC and
    mAP must agree within 1e-6 in every run."""
    p = peer_set["fastreid"]
    if p.error or p.rank_cy_error:
        pytest.skip(p.error or p.rank_cy_error)
    data = _eval_data(workdir, quality)
    runs = []

    parity = []

    def sweep():
        for _ in range(QUALITY_PAIRS):
            peer = _spawn("eval", "fastreid:cython", data, threads=1)
            one = _spawn("eval", "ours", data, threads=1)
            parity.append(_check_eval_parity(data, peer, one))
            two = _spawn("eval", "ours", data, threads=2)
            assert _same_metrics(one, two) == 0.0, "threads changed the result"
            runs.append((peer, one, two))

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    ratio1 = [pr["seconds"] / o["seconds"] for pr, o, _ in runs]
    ratio2 = [pr["seconds"] / t["seconds"] for pr, _, t in runs]
    peer, one, two = runs[-1]
    res = {
        "task": "eval_q", "impl": "ours/fastreid", "quality": quality,
        "label": f"evaluate_rank vs fast-reid evaluate_cy, {quality}",
        "rank1": one["cmc"][0], "mAP": one["mAP"],
        "peer_s": [r[0]["seconds"] for r in runs], "ours1_s": [r[1]["seconds"] for r in runs],
        "ours2_s": [r[2]["seconds"] for r in runs], "ratio1": ratio1, "ratio2": ratio2,
        "peer_cpu_s": [r[0]["cpu_seconds"] for r in runs],
        "ours1_cpu_s": [r[1]["cpu_seconds"] for r in runs],
        "warmup_s": [r[1]["warmup_s"] for r in runs],
        "load1": [r[0]["load1"] for r in runs], "peak_gb": one["peak_gb"],
        "peer_peak_gb": peer["peak_gb"], "rss_inputs_gb": one["rss_inputs_gb"],
        "seconds": min(r[1]["seconds"] for r in runs),
        "parity": (f"per-query AP equal within 1e-6 on {parity[-1]['valid_queries'] - parity[-1]['tie_queries']}"
                   f" of {parity[-1]['valid_queries']} queries; {parity[-1]['tie_queries']} differ only by the "
                   f"order of exactly tied distances; CMC/mAP max diff {max(p['max_diff'] for p in parity):.1e}"),
        "tie_queries": parity[-1]["tie_queries"],
    }
    benchmark.extra_info.update(res)
    RESULTS.append(res)


def test_eval_torchreid_cython(benchmark, peer_set):
    p = peer_set["torchreid"]
    pytest.skip(p.error or p.rank_cy_error or "torchreid cython unavailable")


@pytest.mark.parametrize("peer", ["fastreid", "torchreid"])
def test_eval_python_peers(benchmark, market_eval_data, peer_set, peer):
    if os.environ.get("REID_BENCH_SLOW_PEERS") != "1":
        pytest.skip("pure-Python peers take ~100 s each; set REID_BENCH_SLOW_PEERS=1")
    p = peer_set[peer]
    if p.error:
        pytest.skip(p.error)
    r = run_worker(benchmark, "eval", f"{peer}:python", market_eval_data, f"{peer} eval_market1501 (Python)")
    ours = _spawn("eval", "ours", market_eval_data, threads=1)
    assert _same_metrics(ours, r) <= 1e-6


# ---------------------------------------------------------------- re-ranking ------------------

@pytest.mark.parametrize("peer", ["torchreid", "fastreid"])
def test_rerank_vs_reference(benchmark, rerank_data, peer_set, peer):
    """Ours at 1 thread, the reference (single-threaded numpy), ours at 2 threads: interleaved
    fresh processes on the same inputs; the outputs must agree within 1e-5."""
    if peer == "fastreid" and os.environ.get("REID_BENCH_SLOW_PEERS") != "1":
        pytest.skip("fast-reid's re_ranking is the same code as torchreid's; set REID_BENCH_SLOW_PEERS=1")
    p = peer_set[peer]
    if p.error:
        pytest.skip(p.error)
    box = {}

    def run():
        box["one"] = _spawn("rerank", "ours", rerank_data, threads=1)
        ours = np.load(Path(rerank_data) / "out_ours.npy")
        box["ref"] = _spawn("rerank", f"{peer}:reference", rerank_data, threads=1)
        ref = np.load(Path(rerank_data) / f"out_{peer}_reference.npy")
        box["diff"] = float(np.abs(ours - ref).max())
        box["two"] = _spawn("rerank", "ours", rerank_data, threads=2)

    benchmark.pedantic(run, rounds=1, iterations=1)
    one, ref, two = box["one"], box["ref"], box["two"]
    assert box["diff"] <= 1e-5, f"re-ranked distances differ from {peer}'s by {box['diff']:.2e}"
    for r, label in ((one, "reid_bench re_rank, 1 thread"), (ref, f"{peer} re_ranking (reference)"),
                     (two, "reid_bench re_rank, 2 threads")):
        r.update(label=f"{label} (N=19,281)", ratio=ref["seconds"] / r["seconds"],
                 cpu_ratio=ref["cpu_seconds"] / r["cpu_seconds"],
                 parity=f"max |ours - reference| = {box['diff']:.2e}")
        RESULTS.append(r)
    benchmark.extra_info.update(ours1_s=one["seconds"], ours2_s=two["seconds"], ref_s=ref["seconds"],
                                ours_peak_gb=one["peak_gb"], ref_peak_gb=ref["peak_gb"],
                                max_abs_diff=box["diff"], load1=[one["load1"], ref["load1"], two["load1"]])


def test_rerank_ours_50k(benchmark, workdir):
    if os.environ.get("REID_BENCH_SKIP_50K") == "1":
        pytest.skip("REID_BENCH_SKIP_50K=1")
    # N = 50,000 (10,000 queries + 40,000 gallery); 256-d features only to keep the input
    # distance computation short — re-ranking cost does not depend on the feature size.
    d = _rerank_data(workdir, "rerank50k", 10_000, 40_000, 256)
    r = run_worker(benchmark, "rerank50k", "ours", d, "reid_bench re_rank (N=50,000)")
    assert r["peak_gb"] < 24


# ---------------------------------------------------------------- Market + 500k ---------------

def test_stream_500k_ours(benchmark, workdir):
    d = workdir / "s500k"
    d.mkdir()
    r = run_worker(benchmark, "stream500k", "ours", d, "reid_bench streamed 3,368 × 515,913")
    assert r["peak_gb"] < 4


if __name__ == "__main__" and len(sys.argv) >= 6 and sys.argv[1] == "worker":
    sys.path.insert(0, str(HERE))
    _worker(*sys.argv[2:6])
