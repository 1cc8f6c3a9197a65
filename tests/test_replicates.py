"""Replicates: derived draws and the between-draw verdicts (elicit.replicates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from elicit.config import ParamsError
from elicit.replicates import (
    MIN_DRAWS,
    compare_draws,
    draw_name,
    draw_of,
    draws,
    expand_replicates,
    pgr_over_draws,
)

REPO = Path(__file__).resolve().parents[1]


def test_expand_derives_names_and_seeds() -> None:
    runs = {"a": {"dataset": "d", "oracle": "o", "n": 10, "replicates": 3}, "b": {"dataset": "d", "seed": 7}}
    out = expand_replicates(runs, base_seed=4)
    assert list(out) == ["a", "b", "a__draw1", "a__draw2"]
    assert out["a"].get("seed") is None  # draw 0 is the entry as written (base seed)
    assert [out[n]["seed"] for n in ("a__draw1", "a__draw2")] == [5, 6]
    assert "b__draw1" not in out and "replicates" not in out["a__draw1"]
    assert draws(runs, "a") == ["a", "a__draw1", "a__draw2"] and draws(runs, "b") == ["b"]
    assert draw_of("a__draw2") == ("a", 2) and draw_of("a") == ("a", 0) and draw_name("a", 0) == "a"


def test_expand_refuses_a_hand_written_run_with_a_derived_name() -> None:
    runs = {"a": {"replicates": 2}, "a__draw1": {"dataset": "d"}}
    with pytest.raises(ParamsError, match="runs.a__draw1: this name is draw 1 of runs.a"):
        expand_replicates(runs, base_seed=0)


def test_compare_draws_is_a_paired_t_interval() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(0.7, 0.05, size=6)  # draw-to-draw spread both methods share
    per_draw = pd.DataFrame({"selected": shared + 0.03 + rng.normal(0, 0.005, 6), "zero_shot": shared})
    c = compare_draws(per_draw, "selected", "zero_shot")
    assert c is not None and c.n_draws == 6
    diffs = per_draw["selected"] - per_draw["zero_shot"]
    half = stats.t.ppf(0.975, 5) * diffs.std(ddof=1) / np.sqrt(6)
    assert c.diff == pytest.approx(diffs.mean()) and c.low == pytest.approx(diffs.mean() - half)
    assert c.verdict == "beats"  # paired: the shared spread cancels; marginal intervals would overlap
    assert compare_draws(per_draw, "zero_shot", "selected").verdict == "worse"  # type: ignore[union-attr]


def test_too_few_draws_is_never_a_verdict() -> None:
    per_draw = pd.DataFrame({"selected": [0.9] * (MIN_DRAWS - 1), "zero_shot": [0.5] * (MIN_DRAWS - 1)})
    c = compare_draws(per_draw, "selected", "zero_shot")
    assert c is not None and c.verdict == "too few draws"
    one = compare_draws(per_draw.head(1), "selected", "zero_shot")
    assert one is not None and "no interval" in one.text()


def test_pgr_over_draws_only_where_golden_beats_zero_shot() -> None:
    per_draw = pd.DataFrame(
        {
            "zero_shot": [0.60, 0.62, 0.58, 0.61, 0.59],
            "golden_fewshot": [0.80, 0.83, 0.79, 0.82, 0.80],
            "selected": [0.70, 0.73, 0.68, 0.71, 0.70],
        }
    )
    p = pgr_over_draws(per_draw, "selected")
    assert p.value == pytest.approx(0.104 / 0.208)
    assert p.low is not None and p.high is not None and p.low <= p.value <= p.high
    below = per_draw.assign(golden_fewshot=per_draw["zero_shot"] - 0.05)
    assert pgr_over_draws(below, "selected").value is None
    assert "does not beat zero-shot" in pgr_over_draws(below, "selected").text()
    assert "draws" in str(pgr_over_draws(per_draw.head(3), "selected").reason)


def test_expansion_is_idempotent() -> None:
    """A Snakemake run's snapshot holds the expanded params; loading it again must not refuse the derived runs."""
    runs = {"a": {"dataset": "d", "replicates": 3}}
    once = expand_replicates(runs, base_seed=0)
    assert expand_replicates(once, base_seed=0) == once


def test_a_run_with_replicates_is_drawn_out_for_every_driver(tmp_path) -> None:
    """`replicates: 3` gives three runs with seeds +0, +1, +2; the study reads every draw, ablates only the run."""
    import yaml

    from elicit.config import load_params, resolve_run
    from elicit.pipeline import jobs_for_run, listed_runs
    from elicit.tracking import lookup

    params = yaml.safe_load((REPO / "tests" / "fixtures" / "params.tiny.yaml").read_text())
    params["runs"]["tiny"]["replicates"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    loaded = load_params(tmp_path / "params.yaml")
    assert [resolve_run(loaded, n).seed for n in ("tiny", "tiny__draw1", "tiny__draw2")] == [0, 1, 2]
    assert listed_runs(loaded, "study") == ["tiny", "tiny__draw1", "tiny__draw2"]
    assert listed_runs(loaded, "study", "ablate") == ["tiny"]
    jobs = {j.name for j in jobs_for_run(loaded, "tiny__draw2")}
    assert jobs == {j.name for j in jobs_for_run(loaded, "tiny")}
    # raising replicates re-runs nothing of the draws that exist: no job tracks the key
    more = yaml.safe_load((tmp_path / "params.yaml").read_text())
    more["runs"]["tiny"]["replicates"] = 5
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(more))
    loaded5 = load_params(tmp_path / "more.yaml")
    for j in jobs_for_run(loaded, "tiny__draw1"):
        keys = j.param_keys(loaded)
        assert keys == j.param_keys(loaded5), j.name
        assert [lookup(loaded, k) for k in keys] == [lookup(loaded5, k) for k in keys], j.name
