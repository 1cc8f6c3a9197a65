"""Probe datasets (elicit.datasets.probes): deterministic, balanced, no position hint, disjoint fresh split, groups
that obey their consistency rule under gold, and items the project's item check accepts; and the pure parts of
benchmarks/signal_search.py that measure them (contexts, conditions, metrics, yes/no answers)."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from elicit.contracts import items_layout, violations
from elicit.datasets import DataError, validate_items
from elicit.datasets.config import DatasetConfig
from elicit.datasets.probes import (
    CAPITALS,
    CATEGORIES,
    PROBE_COLUMNS,
    PROBES,
    SPLITS,
    pool,
    probe_items,
    write_probe_files,
)
from elicit.datasets.readers import load_items
from elicit.prompts import render_completion
from helpers import REPO

NAMES = sorted(PROBES)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_seeded(name: str) -> None:
    a = probe_items(name, 60, seed=3)
    pd.testing.assert_frame_equal(a, probe_items(name, 60, seed=3))
    assert a["text"].tolist() != probe_items(name, 60, seed=4)["text"].tolist()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("split", SPLITS)
def test_items_pass_the_item_check(name: str, split: str) -> None:
    items = probe_items(name, 60, seed=0, split=split)  # type: ignore[arg-type]
    validate_items(items)
    assert list(items.columns) == PROBE_COLUMNS
    assert items["item_id"].tolist() == list(range(60))
    assert items["text"].is_unique and items["question"].is_unique
    assert all(q.endswith("?") for q in items["question"]) and all(t.endswith(".") for t in items["text"])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_classes_and_groups(name: str, seed: int) -> None:
    items = probe_items(name, 60, seed=seed)
    assert int(items["gold"].sum()) == 30
    sizes = items.groupby("consistency_id")["gold"].agg(["size", "sum"])
    assert (sizes["size"] == PROBES[name].group_size).all()
    assert (sizes["sum"] * 2 == sizes["size"]).all()  # every group is half true


@pytest.mark.parametrize("name", NAMES)
def test_position_does_not_predict_gold(name: str) -> None:
    for seed in range(5):
        items = probe_items(name, 60, seed=seed)
        position = items.groupby("consistency_id").cumcount()
        per_slot = items.groupby(position)["gold"].agg(["sum", "size"]).astype(int)
        share = per_slot["sum"] / per_slot["size"]
        assert (np.abs(per_slot["sum"] * 2 - per_slot["size"]) <= 2).all(), (seed, share.tolist())
        even = items["item_id"] % 2 == 0
        assert abs(float(items.loc[even, "gold"].mean()) - 0.5) <= 2 / len(items)
    firsts = [int(probe_items(name, 60, seed=s)["gold"].iloc[0]) for s in range(20)]
    assert 0 < sum(firsts) < 20  # the first item is not always true (or always false)


@pytest.mark.parametrize("name", NAMES)
def test_fresh_split_is_disjoint(name: str) -> None:
    main, fresh = (pool(name, s) for s in SPLITS)  # type: ignore[arg-type]
    texts = [{c.text for g in groups for c in g} for groups in (main, fresh)]
    questions = [{c.question for g in groups for c in g} for groups in (main, fresh)]
    assert not texts[0] & texts[1] and not questions[0] & questions[1]
    assert min(len(main), len(fresh)) * PROBES[name].group_size >= 60  # the default n fits both splits
    a = probe_items(name, 60, seed=0, split="main")
    b = probe_items(name, 60, seed=0, split="fresh")
    assert not set(a["text"]) & set(b["text"])


def test_fresh_split_uses_other_words() -> None:
    """Nouns, countries and subjects themselves differ between splits, not only the claims made of them."""

    def subjects(split: str, pattern: str) -> set[str]:
        return {m.group(1) for g in pool(name, split) for c in g if (m := re.match(pattern, c.text))}  # type: ignore[arg-type]

    for name, pattern in (
        ("categories", r"(.+?) is "),
        ("capitals", r"The capital of (.+) is "),
        ("antonyms", r"The opposite of (\w+) is "),
        ("sentiment", r'The sentence "(.+) was '),
    ):
        main, fresh = subjects("main", pattern), subjects("fresh", pattern)
        assert main and fresh and not main & fresh, name


@pytest.mark.parametrize("name", NAMES)
def test_groups_obey_their_rule_under_gold(name: str) -> None:
    items = probe_items(name, 60, seed=1)
    rule = PROBES[name].rule
    layout = items_layout(items, rule)
    assert layout.n_groups == 60 // PROBES[name].group_size
    gold = items["gold"].to_numpy(dtype=np.int64)
    assert violations(layout, gold).sum() == 0
    flipped = gold.copy()
    flipped[0] = 1 - flipped[0]  # the groups carry real logic: one wrong label breaks its group
    assert violations(layout, flipped)[0] > 0


def test_shipped_files_are_what_the_generators_make() -> None:
    """data/probes/*.csv are reproducible: `python -m elicit.datasets.probes` re-writes them byte for byte."""
    assert write_probe_files(REPO, check=True) == []


@pytest.mark.parametrize("name", NAMES)
def test_probe_builtins_load_the_shipped_main_split(name: str) -> None:
    """A pipeline run on a probe loads the whole main split with its rule, and gold obeys the rule."""
    cfg = DatasetConfig.from_params(f"probe_{name}", {"builtin": f"probe_{name}"})
    items = load_items(cfg, REPO)
    assert cfg.consistency == PROBES[name].rule.value
    assert set(items["text"]) == {c.text for g in pool(name, "main") for c in g}
    assert items["gold"].astype(float).mean() == 0.5
    layout = items_layout(items, PROBES[name].rule)
    assert violations(layout, items["gold"].to_numpy(dtype=np.int64)).sum() == 0
    if name == "arithmetic":  # the stated sum, as text
        assert all(k in t for k, t in zip(items["answer_key"], items["text"], strict=True))


def test_truth_is_checkable() -> None:
    """Gold follows from the text: sums, comparisons, capitals and categories recomputed independently."""
    for groups in (pool("arithmetic", s) for s in SPLITS):  # type: ignore[arg-type]
        for c in (c for g in groups for c in g):
            a, b, total = (int(x) for x in re.fullmatch(r"(\d+) \+ (\d+) = (\d+)\.", c.text).groups())  # type: ignore[union-attr]
            assert c.gold == int(a + b == total) and c.answer_key == str(total)
    for c in (c for g in pool("comparisons") for c in g):
        x, y = (int(v) for v in re.fullmatch(r"(\d+) is larger than (\d+)\.", c.text).groups())  # type: ignore[union-attr]
        assert c.gold == int(x > y)
    capitals = set(CAPITALS)
    for c in (c for g in pool("capitals", "fresh") for c in g):
        country, city = re.fullmatch(r"The capital of (.+) is (.+)\.", c.text).groups()  # type: ignore[union-attr]
        assert c.gold == int((country, city) in capitals)
    members = {phrase: set(nouns) for phrase, nouns in CATEGORIES.values()}
    for c in (c for g in pool("categories") for c in g):
        noun, phrase = re.fullmatch(r"(.+?) is (.+)\.", c.text).groups()  # type: ignore[union-attr]
        noun = noun[:1].lower() + noun[1:]
        assert c.gold == int(noun in members[phrase])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: probe_items("colours", 10), r"unknown probe 'colours'; use one of categories"),
        (lambda: probe_items("arithmetic", 10), r"n=10 is not a positive multiple of its group size 4; use n=8"),
        (lambda: probe_items("capitals", 0), r"use n=2"),
        (lambda: probe_items("capitals", 200), r"has 82 items in split 'main'; use n <= 82"),
        (lambda: probe_items("capitals", 10, split="test"), r"unknown probe split 'test'; use one of main, fresh"),  # type: ignore[arg-type]
    ],
)
def test_errors_name_the_fix(call: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        call()  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------- the signal search


@pytest.fixture(scope="module")
def search() -> ModuleType:
    """benchmarks/signal_search.py as a module (its pure parts: plan, metrics, formats)."""
    spec = importlib.util.spec_from_file_location("signal_search", REPO / "benchmarks" / "signal_search.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


def test_contexts_come_from_other_groups_half_of_each_class(search: ModuleType) -> None:
    items = probe_items("arithmetic", 24, seed=2)
    plan = search.plan_contexts(items, 4, seed=2)
    gold = items["gold"].to_numpy()
    group = items["consistency_id"].to_numpy()
    assert plan["target_id"].tolist() == list(range(24))
    for t, ids, shown in zip(plan["target_id"], plan["context_ids"], plan["random_shown"], strict=True):
        assert len(set(ids)) == 4 and group[t] not in set(group[ids])  # a group-mate would give the answer away
        assert sorted(gold[ids]) == [0, 0, 1, 1] and sorted(shown) == [0, 0, 1, 1]
    pd.testing.assert_frame_equal(plan, search.plan_contexts(items, 4, seed=2))


def test_conditions_share_contexts_and_differ_in_shown_labels(search: ModuleType) -> None:
    items = probe_items("capitals", 12, seed=0)
    plan = search.plan_contexts(items, 4, seed=0)
    fmt = search.FORMATS["claim"]
    gold = items["gold"].to_numpy()
    rows = {c: search.queries(c, plan, fmt, "t", gold) for c in ("random", "golden")}
    assert rows["random"]["context_ids"].tolist() == rows["golden"]["context_ids"].tolist()
    assert len(rows["random"]) == 24 and set(rows["random"]["framing"]) == {"pos", "neg"}
    for ids, shown in zip(rows["golden"]["context_ids"], rows["golden"]["context_shown"], strict=True):
        assert shown == [int(gold[i]) for i in ids]
    zero = search.queries("zero_shot", plan, search.FORMATS["yesno"], "t")
    assert len(zero) == 12 and all(len(c) == 0 for c in zero["context_ids"])


def test_metrics(search: ModuleType) -> None:
    y = np.array([1, 0, 1, 0])
    assert search.auroc(np.array([2.0, 1.0, 3.0, 0.0]), y) == 1.0
    assert search.auroc(np.array([1.0, 1.0, 1.0, 1.0]), y) == 0.5
    assert search.accuracy(np.array([2.0, -1.0, np.nan, 1.0]), y) == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert search.accuracy_median(np.array([5.0, 4.0, 6.0, 3.0]), y) == 1.0  # all "true" at 0, right at the median
    s = np.array([0.3, -0.2, 0.1, 0.4, -1.0, 2.0])
    yy, groups = np.array([1, 0, 0, 1, 0, 1]), np.array([0, 0, 1, 1, 2, 2])
    assert search.paired_bootstrap(search.auroc, s, s, yy, groups, 50, 0) == (0.0, 0.0, 0.0)
    assert search.own_labels(np.array([0.1, 0.5, np.nan, -2.0])).tolist() == [0, 1, 0, 0]


def test_yes_no_format_is_the_projects_question_template(search: ModuleType) -> None:
    """The screen's yesno cells ask with data/templates.yaml's probe_questions (answer words Yes/No, one framing),
    the template a pipeline run on a probe's question form uses."""
    t = search.FORMATS["yesno"].template("categories")
    assert t.answer_words == ("Yes", "No") and t.neg is None and search.FORMATS["yesno"].framings == ("pos",)
    assert render_completion(t, "pos", "Is a dog an animal?", [("Is a cat a fruit?", 0)]) == (
        "Answer Yes or No.\n\nQuestion: Is a cat a fruit?\nAnswer: No\n\nQuestion: Is a dog an animal?\nAnswer:"
    )
    assert search.FORMATS["claim"].template("categories").answer_words == ("True", "False")


def test_markdown_lists_failed_cells(search: ModuleType) -> None:
    cells = pd.DataFrame([{"model": "gemma", "dataset": "capitals", "format": "chat", "status": "failed: no server"}])
    table = search.markdown(cells)
    assert "| gemma | capitals | chat | – | – / – |" in table and "failed: no server |" in table


def test_real_model_observables() -> None:
    """benchmarks/signal_observables.py: the yes bias of one- and two-framing cells, PGR only over a real gap."""
    spec = importlib.util.spec_from_file_location("signal_observables", REPO / "benchmarks" / "signal_observables.py")
    assert spec is not None and spec.loader is not None
    obs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(obs)
    one = pd.DataFrame(
        {
            "condition": "zero_shot",
            "framing": "pos",
            "missing": False,
            "score": [2.0, 1.0, 0.0, 1.0],
            "target_id": range(4),
        }
    )
    assert obs.yes_bias(one) == pytest.approx(1.0)
    # pos = s + a, neg (sign undone) = s - a, with a = 0.5 and any s
    two = pd.DataFrame(
        {
            "condition": "zero_shot",
            "framing": ["pos", "neg", "pos", "neg"],
            "missing": False,
            "score": [3.5, 2.5, -0.5, -1.5],
            "target_id": [0, 0, 1, 1],
        }
    )
    assert obs.yes_bias(two) == pytest.approx(0.5)
    assert obs._ratio(0.1, 0.2, 0.05) == pytest.approx(0.5)
    assert np.isnan(obs._ratio(0.1, 0.2, -0.01))  # the gap's interval reaches 0: no ratio
