"""The method keep rule (issue 15) as a whole-sweep change, paired per draw.

A variant removes one loss term (``prior`` or ``ranking``) from every swept config of ``optimize.configs`` except
``prior_only`` (select's fallback, the prior alone), refits every config of each draw with the optimize stage, re-runs
the gold-free selection with the select stage, and scores the re-selected labels against the run's current
``labels/selected`` (both as the seed-mean label, p_true mean over seed files >= 0.5, against items.parquet gold).
Per preset: the mean per-draw Δ and its 95 % t-interval over the draws; the keep rule over the out-of-family presets.

Nothing under results/ is written: each stage runs with its working directory at ``<work>/<variant>/``, so its
``results/<run>/`` (outputs and telemetry; the stages confine their writes to it) lies under the work folder, and the
run's inputs (items, priors, tuples) are read from this repository's ``results/<run>/`` through the stage flags.

    nice -n 15 uv run python benchmarks/keep_rule.py --work /tmp/keeprule            # both variants, all 20 runs
    nice -n 15 uv run python benchmarks/keep_rule.py --variants noprior --runs suite_ethics__sim_latent

Re-running skips the stage outputs already there (``--fresh`` refits everything).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from elicit.config import load_params
from elicit.evaluate.metrics import seed_mean_p
from elicit.optimize import OptimizeSection
from elicit.replicates import t_interval
from elicit.stages._labels import read_labels
from elicit.study import KEEP_FLOOR, KEEP_MIN_POSITIVE

REPO = Path(__file__).resolve().parents[1]
PRESETS = ["sim_strong", "sim_latent", "sim_mixed", "sim_belief"]
SUITE = ["sim_latent", "sim_mixed", "sim_belief"]  # out of family: the keep rule counts these
IN_FAMILY = ["sim_strong"]
RUNS = [f"suite_ethics__{p}{d}" for p in PRESETS for d in ["", "__draw1", "__draw2", "__draw3", "__draw4"]]
# variant -> (the loss terms it sets to 0, the configs it sets them on: None = every config but prior_only). The
# "full_*" variants are the candidate defaults as params.yaml would state them: the term dropped from `full` only,
# which consistency_heavy and full_lbfgs extend; mutual_prior (anchored by the prior by design) stays as it is.
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "noprior": (("prior",), None),
    "noranking": (("ranking",), None),
    "noprior_noranking": (("prior", "ranking"), None),
    "full_noprior": (("prior",), ("full",)),
    "full_noprior_noranking": (("prior", "ranking"), ("full",)),
    "both_fulls": ((), None),  # the sweep with `full` with and without them (ADDED below); measured: fails
}
ADDED: dict[str, dict[str, dict]] = {
    # 2026-12-02, after the default dropped both terms from `full`: keep `full` as it was before beside it, so that
    # selection can fall back to it where few answers make the prior-free fit lose on held-out answers.
    "both_fulls": {"full_prior": {"extends": "full", "weights": {"prior": 0.3, "ranking": 0.1}}},
}
KEEP_AS_IS = {"prior_only"}  # select's fallback: the prior alone


def preset_of(run: str) -> str:
    return run.split("__")[1]


# ------------------------------------------------------------------------------------------------ params per variant


def write_variant_params(work: Path, variant: str) -> Path:
    """``<work>/<variant>/params.yaml`` (and the study.yaml it includes): params.yaml with the variant's term at 0
    in every swept config but prior_only. Returns the params path."""
    terms, scope = VARIANTS[variant]
    folder = work / variant
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for inc in raw.get("include") or []:
        shutil.copyfile(REPO / inc, folder / inc)
    configs = raw["optimize"]["configs"]
    for name, entry in configs.items():
        if name in KEEP_AS_IS or (scope is not None and name not in scope):
            continue
        # Without a scope, set the terms on every config (a config that extends another would inherit the 0 anyway;
        # stating it on each keeps the change explicit and independent of the extends chain).
        entry.setdefault("weights", {})
        entry["weights"] = {**entry["weights"], **dict.fromkeys(terms, 0.0)}
    configs.update(ADDED.get(variant, {}))
    path = folder / "params.yaml"
    where = "*" if scope is None else "{" + ",".join(scope) + "}"
    path.write_text(
        f"# keep_rule.py variant {variant}: optimize.configs.{where}.weights.{{{','.join(terms)}}} = 0"
        " (prior_only kept)\n" + yaml.safe_dump(raw, sort_keys=False, width=120)
    )
    return path


def resolved_weights(params_path: Path) -> dict[str, dict[str, float]]:
    """Each swept config's active weights as the stages will resolve them (a check of the variant file)."""
    section = OptimizeSection.from_params(load_params(params_path)["optimize"])
    return {name: c.weights.active() for name, c in section.configs.items()}


# ------------------------------------------------------------------------------------------------ stage jobs


def _stage(stage: str, args: list[str], cwd: Path, log: Path) -> float:
    """One stage CLI in ``cwd``; returns its wall time. Its stderr/stdout go to ``log``."""
    env = {k: v for k, v in os.environ.items() if k != "ELICIT_PARAMS_SNAPSHOT"}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.setdefault("ELICIT_LOG_LEVEL", "WARNING")
    start = time.perf_counter()
    with log.open("a") as fh:
        fh.write(f"$ python -m elicit.stages.{stage} {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.run(
            [sys.executable, "-m", f"elicit.stages.{stage}", *args], cwd=cwd, env=env, stdout=fh, stderr=fh
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} {' '.join(args)} failed (rc {proc.returncode}); see {log}")
    return time.perf_counter() - start


def reuse_unchanged(work: Path, variant: str, run: str, unchanged: list[str]) -> None:
    """Copy the run's own fits of the configs the variant leaves as they are instead of refitting them (each refit
    is a process start, ~15 s on the loaded 2-core machine; the refits reproduce these fits exactly, see the
    unchanged check of the variants that refit them)."""
    for config in unchanged:
        dst = work / variant / "results" / run / "labels" / config
        if not (dst.exists() and any(dst.glob("seed*.parquet"))):
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(REPO / "results" / run / "labels" / config, dst)


def refit_and_select(work: Path, variant: str, run: str, configs: list[str], fresh: bool) -> dict:
    """Every config of ``run`` refitted under the variant's params, then select; returns the selection summary."""
    cwd = work / variant
    params = cwd / "params.yaml"
    src = REPO / "results" / run
    out = cwd / "results" / run
    out.mkdir(parents=True, exist_ok=True)
    log = out / "stages.log"
    inputs = ["--items", str(src / "items.parquet"), "--priors", str(src / "priors.parquet")]
    inputs += ["--tuples", str(src / "tuples.parquet")]
    base = ["--run", run, "--params", str(params)]
    selection = out / "selection.json"
    if fresh and out.exists():
        for p in [*(out / "labels" / c for c in [*configs, "selected"])]:
            shutil.rmtree(p, ignore_errors=True)
        selection.unlink(missing_ok=True)
    wall = 0.0
    for config in configs:
        folder = out / "labels" / config
        if folder.exists() and any(folder.glob("seed*.parquet")):
            continue
        wall += _stage("optimize", [*base, "--config", config, *inputs, "--out", str(folder)], cwd, log)
    if not selection.exists():
        labels = [str(out / "labels" / c) for c in configs]
        wall += _stage(
            "select",
            [
                *base,
                *inputs,
                "--labels",
                *labels,
                "--out",
                str(out / "labels" / "selected"),
                "--selection",
                str(selection),
            ],
            cwd,
            log,
        )
    sel = json.loads(selection.read_text())
    return {"selected": sel["selected"], "wall_s": wall}


# ------------------------------------------------------------------------------------------------ scoring


def seed_mean_accuracy(folder: Path, gold: pd.Series) -> float:
    """Accuracy of the seed-mean label (mean p_true over the seed files >= 0.5) against gold (non-null items)."""
    seeds = read_labels(folder)
    if not seeds:
        raise FileNotFoundError(f"no seed files in {folder}")
    p = seed_mean_p(seeds, gold.index.to_numpy())
    ok = gold.notna().to_numpy()
    return float(np.mean((p[ok] >= 0.5) == gold.to_numpy()[ok].astype(bool)))


def unchanged_gap(work: Path, variant: str, run: str, unchanged: list[str]) -> float:
    """Largest |p_true| difference between the refit and the run's own labels of the configs the variant leaves
    as they are (a check that the refits reproduce the pipeline's fits; 0 when deterministic)."""
    gap = 0.0
    for config in unchanged:
        ours = work / variant / "results" / run / "labels" / config
        theirs = REPO / "results" / run / "labels" / config
        for f in sorted(theirs.glob("seed*.parquet")):
            if f.name.endswith(".curve.parquet"):
                continue
            a = pd.read_parquet(f).set_index("item_id")["p_true"]
            b = pd.read_parquet(ours / f.name).set_index("item_id")["p_true"].reindex(a.index)
            gap = max(gap, float(np.max(np.abs(a.to_numpy() - b.to_numpy()))))
    return gap


def score(work: Path, variant: str, run: str) -> dict:
    items = pd.read_parquet(REPO / "results" / run / "items.parquet", columns=["item_id", "gold"])
    gold = items.set_index("item_id")["gold"]
    current = seed_mean_accuracy(REPO / "results" / run / "labels" / "selected", gold)
    new = seed_mean_accuracy(work / variant / "results" / run / "labels" / "selected", gold)
    cur_sel = json.loads((REPO / "results" / run / "selection.json").read_text())["selected"]
    new_sel = json.loads((work / variant / "results" / run / "selection.json").read_text())["selected"]
    return {
        "variant": variant,
        "run": run,
        "preset": preset_of(run),
        "current": current,
        "new": new,
        "delta": new - current,
        "current_config": cur_sel,
        "new_config": new_sel,
    }


def keep_verdict(cells: dict[str, tuple[float, float, float]]) -> str:
    suite = [cells[p] for p in SUITE if p in cells]
    if len(suite) < len(SUITE):
        return f"incomplete ({len(suite)} of {len(SUITE)} suite presets)"
    lows = [c[1] for c in suite]
    positive = sum(low > 0 for low in lows)
    if all(low >= KEEP_FLOOR for low in lows) and positive >= KEEP_MIN_POSITIVE:
        return "**passes**"
    return f"fails (lowest bound {100 * min(lows):+.1f}; {positive} of {len(suite)} bounds > 0)"


def markdown(rows: pd.DataFrame) -> str:
    out = []
    presets = [p for p in PRESETS if p in set(rows["preset"])]
    head = ["variant", *(f"{p}{' (in family)' if p in IN_FAMILY else ''}" for p in presets), "keep rule"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant, g in rows.groupby("variant", sort=False):
        cells: dict[str, tuple[float, float, float]] = {}
        texts = []
        for p in presets:
            d = g[g["preset"] == p]["delta"].to_numpy()
            if len(d) == 0:
                texts.append("–")
                continue
            mean, low, high, _ = t_interval(d)
            cells[p] = (mean, low, high)
            texts.append(f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] ({len(d)})")
        out.append("| " + " | ".join([variant, *texts, keep_verdict(cells)]) + " |")
    out += ["", "Per draw (accuracy in %, Δ in points; config selected now → under the variant):", ""]
    out += [
        "| variant | run | current | variant | Δ | selected now | selected under variant |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows.itertuples():
        out.append(
            f"| {r.variant} | {r.run} | {100 * r.current:.1f} | {100 * r.new:.1f} | {100 * r.delta:+.1f} | "
            f"{r.current_config} | {r.new_config} |"
        )
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--runs", nargs="+", default=RUNS)
    ap.add_argument("--work", type=Path, default=Path("/tmp/keeprule"))
    ap.add_argument("--jobs", type=int, default=2, help="(variant, run) units in parallel (each one process at a time)")
    ap.add_argument("--fresh", action="store_true", help="refit even where outputs exist")
    ap.add_argument(
        "--reuse-unchanged",
        action="store_true",
        help="copy the run's own labels of configs the variant leaves unchanged instead of refitting them (faster)",
    )
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    base_weights = resolved_weights(REPO / "params.yaml")
    base_configs = list(base_weights)
    unchanged: dict[str, list[str]] = {}
    for variant in args.variants:
        path = write_variant_params(work, variant)
        weights = resolved_weights(path)
        unchanged[variant] = [c for c in base_configs if weights.get(c) == base_weights[c]]
        if list(weights) != base_configs + list(ADDED.get(variant, {})):
            raise SystemExit(f"{path}: configs {list(weights)} differ from params.yaml's {base_configs}")
        print(f"{variant}: {path}", file=sys.stderr)
        for name, w in weights.items():
            print(f"  {name}: {w}{'  (unchanged)' if name in unchanged[variant] else ''}", file=sys.stderr)

    units = [(v, r) for v in args.variants for r in args.runs]
    if args.reuse_unchanged and not args.fresh:
        for v, r in units:
            reuse_unchanged(work, v, r, unchanged[v])
    start = time.perf_counter()
    done = 0
    rows = []
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            pool.submit(refit_and_select, work, v, r, base_configs + list(ADDED.get(v, {})), args.fresh): (v, r)
            for v, r in units
        }
        for fut in cf.as_completed(futures):
            v, r = futures[fut]
            done += 1
            try:
                info = fut.result()
            except Exception as exc:  # noqa: BLE001 - report and go on with the other runs
                print(f"[{done}/{len(units)}] {v} {r}: FAILED {exc}", file=sys.stderr, flush=True)
                continue
            row = score(work, v, r)
            row["unchanged_gap"] = unchanged_gap(work, v, r, unchanged[v])
            rows.append(row)
            print(
                f"[{done}/{len(units)}] {time.perf_counter() - start:6.0f}s {v} {r}: "
                f"{row['current_config']} {100 * row['current']:.1f} -> {info['selected']} {100 * row['new']:.1f} "
                f"(Δ {100 * row['delta']:+.1f}; stages {info['wall_s']:.0f}s; "
                f"unchanged configs' max |Δp| {row['unchanged_gap']:.1e})",
                file=sys.stderr,
                flush=True,
            )
    if not rows:
        raise SystemExit("no run finished")
    table = pd.DataFrame(rows)
    table["_order"] = [units.index((v, r)) for v, r in zip(table["variant"], table["run"], strict=True)]
    table = table.sort_values("_order").drop(columns="_order").reset_index(drop=True)
    table.to_csv(work / "keep_rule.csv", index=False)
    text = markdown(table)
    (work / "keep_rule.md").write_text(text + "\n")
    print(text)
    print(f"\nwall {time.perf_counter() - start:.0f} s; table also in {work / 'keep_rule.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
