"""Speed and memory of the optimizer on synthetic problems (planted truth and biases: optimize/synthetic.py).

Prints, with the goal next to each figure (HIT / MISS):
  1. seed-size problem (1,580 items, 31,546 tuples, 6-10 context items): one epoch = forward + backward of
     every loss term (mutual, nuisance, flip, prior, ranking, consistency, balance, entropy); goal <= 20 ms on
     the 2-core CPU. Ratio to the plain-Python reference loop (reference.py) in the same run: the reference is
     timed on a subsample (tuples, flip pairs, items, pairs and groups) and scaled linearly to the full size.
  2. seed-size fit of the `full` config to convergence (goal <= 1 s), after a warm-up fit that pays the
     one-time import of torch.optim (reported separately).
  3. a 16-config sweep (the 8 configs of params.yaml's optimize section + 8 weight variants of `full`), one
     seed each; goal <= 30 s.
  4. large problem (100,000 items x 2,000,000 tuples): build, per-epoch time, peak memory (process max RSS;
     on CUDA also torch.cuda.max_memory_allocated); goal < 4 GB. Also the optimizer alone: a fresh process
     that loads the built problem and fits it.
Runs unchanged on a CUDA machine (device auto). Usage:
  uv run --no-sync python benchmarks/optimize_speed.py [--device auto|cpu|cuda] [--skip-large] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elicit.optimize import (  # noqa: E402
    OptimizeConfig,
    OptimizeSection,
    build_problem,
    fit,
    resolve_device,
)
from elicit.optimize import losses as L  # noqa: E402
from elicit.optimize import reference as R  # noqa: E402
from elicit.optimize.config import LOSS_NAMES  # noqa: E402
from elicit.optimize.fit import cpu_threads  # noqa: E402
from elicit.optimize.problem import Problem, sample_ranking_pairs  # noqa: E402
from elicit.optimize.synthetic import SyntheticSpec, generate  # noqa: E402

ALL_TERMS = dict.fromkeys(LOSS_NAMES, 1.0)


def verdict(value: float, goal: float, unit: str) -> str:
    return f"{value:.3g} {unit} (goal <= {goal:g} {unit}: {'HIT' if value <= goal else 'MISS'})"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def max_rss_gb() -> float:
    """Peak resident memory of this process: VmHWM (per address space, reset by exec), else ru_maxrss.

    ru_maxrss alone would not do for the child process: Linux carries it over from the parent across exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def epoch_seconds(problem: Problem, reps: int) -> float:
    """Median wall time of one forward + backward over every term."""
    z = torch.nn.Parameter(problem.prior_logit.clone())
    theta = torch.nn.Parameter(L.init_nuisance(problem))
    pairs = sample_ranking_pairs(problem, 4.0, 1.0, torch.Generator().manual_seed(0))

    def once() -> None:
        terms = L.compute_losses(z, theta, problem, ALL_TERMS, pairs=pairs)
        sum(terms.values()).backward()
        z.grad = None
        theta.grad = None

    for _ in range(3):
        once()
    times = []
    for _ in range(reps):
        sync(problem.device)
        t0 = time.perf_counter()
        once()
        sync(problem.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    value = fn()
    if isinstance(value, torch.Tensor):
        value.backward()
    return time.perf_counter() - t0


def reference_epoch_seconds(data, problem: Problem, rng: np.random.Generator) -> tuple[float, str]:
    """Reference-loop epoch estimate: each term timed (forward + backward) on a subsample, scaled linearly."""
    p64 = problem.to(dtype=torch.float64, device="cpu")
    z = torch.nn.Parameter(p64.prior_logit.clone())
    theta = torch.nn.Parameter(L.init_nuisance(p64))
    tuples = data.tuples
    n_sub = 400
    sub = tuples.iloc[np.sort(rng.choice(len(tuples), n_sub, replace=False))]
    rows = R.rows_from_table(sub)
    flips = tuples[tuples["flip_of"].notna()].sample(100, random_state=0)
    pair_rows = R.rows_from_table(pd.concat([flips, tuples[tuples["query_id"].isin(flips["flip_of"])]]))
    n_flip_pairs = int(tuples["flip_of"].notna().sum())
    hi, lo = sample_ranking_pairs(p64, 4.0, 1.0, torch.Generator().manual_seed(0))
    pairs = R.pairs_to_list(hi[:500], lo[:500])
    groups = R.consistency_groups(data.items, data.consistency_rule)
    item_sub = 300
    zs = torch.nn.Parameter(p64.prior_logit[:item_sub].clone())
    t = p64.n_tuples
    parts = {
        "mutual": timed(lambda: R.mutual(z, theta, rows)) * t / n_sub,
        "nuisance": timed(lambda: R.nuisance(z, theta, rows)) * t / n_sub,
        "flip": timed(lambda: R.flip(z, theta, pair_rows, 0.6, 1.0)) * n_flip_pairs / len(flips),
        "prior": timed(lambda: R.prior(zs, p64.prior_logit[:item_sub])) * p64.n_items / item_sub,
        "entropy": timed(lambda: R.entropy(zs)) * p64.n_items / item_sub,
        "balance": timed(lambda: R.balance(zs, 0.5)) * p64.n_items / item_sub,
        "ranking": timed(lambda: R.ranking(z, pairs, 0.5)) * max(hi.numel(), 1) / max(len(pairs), 1),
        "consistency": timed(lambda: R.consistency(z, groups[:100], data.consistency_rule))
        * len(groups)
        / max(min(len(groups), 100), 1),
    }
    how = (
        f"reference timed on {n_sub} tuples, {len(flips)} flip pairs, {item_sub} items, {len(pairs)} ranking "
        "pairs and 100 consistency groups, each scaled linearly to the full problem"
    )
    return sum(parts.values()), how


def load_section() -> OptimizeSection:
    """The ``optimize:`` section of params.yaml (or of the workflow/optimize.params.yaml fragment)."""
    for path in (ROOT / "params.yaml", ROOT / "workflow" / "optimize.params.yaml"):
        if path.exists():
            section = (yaml.safe_load(path.read_text()) or {}).get("optimize")
            if section:
                return OptimizeSection.from_params(section)
    raise SystemExit("no optimize: section in params.yaml or workflow/optimize.params.yaml")


def sweep_configs(section: OptimizeSection) -> dict[str, OptimizeConfig]:
    configs = dict(section.configs)
    full = section.configs["full"]
    for prior in (0.1, 1.0):
        for consistency in (0.25, 1.0):
            for flip in (0.0, 0.6):
                weights = full.weights.__class__(
                    **{**full.weights.__dict__, "prior": prior, "consistency": consistency, "flip": flip}
                )
                name = f"full_p{prior}_c{consistency}_f{flip}"
                configs[name] = full.with_(name=name, weights=weights)
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: fit's own choice)")
    parser.add_argument("--fit-only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.fit_only:
        fit_only(args.fit_only, device)
        return
    section = load_section()
    print("== optimizer speed benchmark ==")
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if device.type == "cuda" else ""
    print(
        f"device {device}{gpu}; torch {torch.__version__}; {os.cpu_count()} CPUs; torch threads "
        f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}; {platform.machine()}"
    )

    # -- 1. seed-size epoch ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    data = generate(SyntheticSpec(consistency="exactly_one_true", seed=0))
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    problem = build_problem(data.tuples, data.priors, data.items, data.consistency_rule, device=device)
    t_build = time.perf_counter() - t0
    print(
        f"\n[seed size] {problem.n_items} items, {problem.n_tuples} tuples "
        f"(K <= {problem.ctx_ids.shape[1]}), "
        f"{problem.n_flips} flip pairs, {problem.n_groups} consistency groups; generate {t_gen:.2f} s, "
        f"build_problem {t_build:.2f} s"
    )
    with cpu_threads(problem, device, args.threads):
        t_epoch = epoch_seconds(problem, reps=50)
        threads_used = torch.get_num_threads()
    print(f"  epoch (forward+backward, all 8 terms, {threads_used} thread(s)): {verdict(t_epoch * 1e3, 20, 'ms')}")
    t_ref, how = reference_epoch_seconds(data, problem, np.random.default_rng(0))
    print(f"  reference loop epoch (estimated): {t_ref:.1f} s -> speed-up {t_ref / t_epoch:,.0f}x")
    print(f"    ({how})")

    # -- 2. fit to convergence ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    fit(
        problem,
        section.configs["mutual_only"].with_(max_epochs=2),
        seed=0,
        device=device,
        threads=args.threads,
    )
    print(f"  one-time warm-up (torch.optim import, first fit): {time.perf_counter() - t0:.2f} s")
    truth = data.truth
    for name in ("full", "full_lbfgs"):
        t0 = time.perf_counter()
        result = fit(problem, section.configs[name], seed=0, device=device, threads=args.threads)
        t_fit = time.perf_counter() - t0
        acc = float(np.mean((result.p_true > 0.5) == truth))
        print(
            f"  fit '{name}' to convergence: {verdict(t_fit, 1.0, 's')}; {result.n_epochs} epochs, "
            f"converged={result.converged}, accuracy vs planted truth {acc:.3f}"
        )

    # -- 3. sweep
    # ---------------------------------------------------------------------------------------------
    configs = sweep_configs(section)
    t0 = time.perf_counter()
    accs = []
    for config in configs.values():
        result = fit(problem, config, seed=0, device=device, threads=args.threads)
        accs.append(float(np.mean((result.p_true > 0.5) == truth)))
    t_sweep = time.perf_counter() - t0
    print(
        f"  sweep of {len(configs)} configs (1 seed each): {verdict(t_sweep, 30, 's')}; accuracy "
        f"min {min(accs):.3f} / max {max(accs):.3f}"
    )
    del problem, data

    # -- 4. large problem --------------------------------------------------------------------------------
    if args.skip_large:
        print("\n[large] skipped (--skip-large)")
        return
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    big = generate(SyntheticSpec(n_items=100_000, n_tuples=2_000_000, consistency="exactly_one_true", seed=1))
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    big_problem = build_problem(big.tuples, big.priors, big.items, big.consistency_rule, device=device)
    t_build = time.perf_counter() - t0
    rss_tables = max_rss_gb()
    tensor_gb = (
        sum(v.element_size() * v.numel() for v in big_problem.__dict__.values() if isinstance(v, torch.Tensor))
        / 1024**3
    )
    print(
        f"\n[large] {big_problem.n_items} items, {big_problem.n_tuples} tuples, "
        f"{big_problem.n_flips} flip pairs; generate {t_gen:.1f} s, build_problem {t_build:.1f} s; "
        f"problem tensors {tensor_gb:.2f} GB"
    )
    del big
    with cpu_threads(big_problem, device, args.threads):
        t_big = epoch_seconds(big_problem, reps=5)
        threads_used = torch.get_num_threads()
    print(f"  epoch (forward+backward, all terms, {threads_used} thread(s)): {t_big * 1e3:.0f} ms")
    t0 = time.perf_counter()
    result = fit(big_problem, section.configs["full"].with_(max_epochs=20), seed=0, device=device)
    print(f"  20 epochs of 'full': {time.perf_counter() - t0:.1f} s")
    peak = max_rss_gb()
    print(
        f"  peak RSS, whole process (synthetic tables + build + fit): {verdict(peak, 4.0, 'GB')}; "
        f"after generate+build {rss_tables:.2f} GB"
    )
    if device.type == "cuda":
        gpu_peak = torch.cuda.max_memory_allocated() / 1024**3
        print(f"  peak CUDA memory allocated: {verdict(gpu_peak, 4.0, 'GB')}")
    del result
    # The optimizer alone: a fresh process loads the built problem and fits it (its peak RSS includes torch).
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "problem.pt"
        torch.save(big_problem.to("cpu"), path)
        del big_problem
        child = subprocess.run(
            [sys.executable, __file__, "--fit-only", str(path), "--device", str(device)],
            capture_output=True,
            text=True,
            check=False,
        )
    print("  " + (child.stdout.strip() or f"fit-only child failed: {child.stderr.strip()[-400:]}"))


def fit_only(path: str, device: torch.device) -> None:
    """Child process: load a saved Problem, fit 20 epochs of 'full', print the peak RSS of this process."""
    problem = torch.load(path, weights_only=False)
    base = max_rss_gb()
    config = load_section().configs["full"].with_(max_epochs=20)
    fit(problem.to(device), config, seed=0, device=device)
    peak = max_rss_gb()
    print(
        f"fit only (fresh process, problem loaded then 20 epochs): peak RSS {verdict(peak, 4.0, 'GB')} "
        f"(torch + problem before fitting: {base:.2f} GB)"
    )


if __name__ == "__main__":
    main()
