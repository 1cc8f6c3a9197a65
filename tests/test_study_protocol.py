"""The study's protocol section: label sets judged as demonstrations, compared over draws, never from one draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from elicit.protocol import accuracy_table
from elicit.stages.study import protocol_groups
from elicit.study_protocol import per_draw, protocol_markdown, protocol_rows


def _draw(seed: int, right: dict[str, float], n: int = 200) -> pd.DataFrame:
    """One draw's protocol table, each method right on about ``right[method]`` of ``n`` test items."""
    rng = np.random.default_rng(seed)
    gold = {i: int(rng.integers(0, 2)) for i in range(n)}
    rows = []
    for method, share in right.items():
        hit = rng.random(n) < share
        for i in range(n):
            p = 0.9 if (gold[i] == 1) == hit[i] else 0.1
            rows.append({"method": method, "target_id": i, "p_true": p, "n_demos": 8, "calls": 2, "missing": 0})
    return accuracy_table(pd.DataFrame(rows), gold, {i: i for i in range(n)}, n_boot=200, seed=seed)


PLANTED = {"no_demos": 0.6, "gold": 0.9, "selected": 0.85, "icm": 0.6, "config_x": 0.7}


def test_planted_gaps_come_out_over_draws_and_configs_are_left_off() -> None:
    tables = [_draw(s, PLANTED) for s in range(3)]
    acc = per_draw(tables)
    assert len(acc) == 3 and abs(acc["selected"].mean() - 0.85) < 0.05
    rows = {r["method"]: r for r in protocol_rows({"run_a": tables})}
    assert list(rows) == ["no_demos", "gold", "selected", "icm"]  # in SHOWN's order; the swept config is left off
    assert rows["selected"]["vs_no_demos"].startswith("+2") and "(3 draws)" in rows["selected"]["vs_no_demos"]
    assert "items: 3↑ 0↓ of 3" in rows["selected"]["vs_no_demos"]
    assert "0↑ 3↓ of 3" in rows["icm"]["vs_gold"]
    assert rows["no_demos"]["vs_no_demos"] == "–"


def test_one_draw_has_no_interval_and_no_runs_no_section() -> None:
    rows = protocol_rows({"run_a": [_draw(0, PLANTED)]})
    assert rows[0]["accuracy"].endswith("(1 draw)")
    assert "1 draw: no interval" in rows[2]["vs_no_demos"]
    assert protocol_markdown({}) == []
    md = "\n".join(protocol_markdown({"run_a": [_draw(0, PLANTED)]}))
    assert "| run_a | selected | 1 |" in md and "Transductive" in md


def test_protocol_folders_group_by_the_run_they_were_drawn_from(tmp_path: Path) -> None:
    for name, seed in (("r", 0), ("r__draw1", 1), ("other", 2)):
        folder = tmp_path / name / "protocol"
        folder.mkdir(parents=True)
        _draw(seed, PLANTED, n=20).to_parquet(folder / "accuracy.parquet")
    unbuilt = tmp_path / "r__draw2" / "protocol"
    groups = protocol_groups(
        [tmp_path / "r" / "protocol", tmp_path / "r__draw1" / "protocol", unbuilt, tmp_path / "other" / "protocol"]
    )
    assert {k: len(v) for k, v in groups.items()} == {"r": 2, "other": 1}


def test_an_accuracy_interval_over_three_draws_stays_below_100_percent() -> None:
    tables = [_draw(s, {**PLANTED, "selected": share}) for s, share in enumerate((0.75, 0.99, 0.99))]
    acc = next(r for r in protocol_rows({"run_a": tables}) if r["method"] == "selected")["accuracy"]
    assert float(acc.split("[")[1].split(",")[1].rstrip("]")) <= 100.0
