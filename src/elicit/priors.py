"""Zero-shot priors and the interim between-round fit (pure functions on DataFrames; no gold, no I/O).

Scores are log-odds that the target has label 1, with the framing already undone by the oracle. A model
that leans towards answering "True" (acquiescence, offset a) gives ``s + a`` under the positive framing
and ``s - a`` under the negative one, so averaging the *per-framing means* cancels a; a plain mean over
variants would not when one framing has more missing answers than the other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from elicit.errors import ElicitError

PRIORS_COLUMNS: tuple[str, ...] = ("item_id", "score", "score_pos", "score_neg", "spread", "n_missing")
SHOWN_COLUMNS: tuple[str, ...] = ("item_id", "p_true")
FEW_SHOT_KINDS: tuple[str, ...] = ("few_shot", "flip")


class PriorsError(ElicitError, ValueError):
    """Bad predictions or priors frame; one line saying what is wrong and how to fix it."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (no overflow warnings for large |x|); NaN stays NaN, quietly."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.exp(-np.logaddexp(0.0, -x))


def _nullable(values: np.ndarray, present: np.ndarray) -> pd.arrays.FloatingArray:
    """Float64 column with pd.NA (a Parquet null) wherever ``present`` is false; never NaN."""
    return pd.arrays.FloatingArray(np.where(present, values, 0.0).astype(np.float64), ~present.astype(bool))


def _usable(pred: pd.DataFrame, n_items: int, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(target, framing_is_pos, score, ok) of a predictions frame; ok = answered with a finite score."""
    need = {"target_id", "framing", "score", "missing"}
    if not need <= set(pred.columns):
        raise PriorsError(f"{what} needs columns {sorted(need)}; pass the query stage's predictions.parquet")
    target = np.asarray(pred["target_id"], dtype=np.int64)
    if len(target) and (target.min() < 0 or target.max() >= n_items):
        raise PriorsError(f"{what} has target_id outside 0..{n_items - 1}; predictions do not match the items")
    framing = np.asarray(pred["framing"].astype("str"), dtype=object)
    is_pos = framing == "pos"
    if not np.all(is_pos | (framing == "neg")):
        raise PriorsError(f"{what} has a framing other than 'pos'/'neg'; fix the query stage")
    score = pd.to_numeric(pred["score"]).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = pred["missing"].astype("boolean").fillna(True).to_numpy(dtype=bool)
    ok = ~missing & np.isfinite(score)
    return target, is_pos, np.where(ok, score, 0.0), ok


def _framing_means(
    target: np.ndarray, is_pos: np.ndarray, score: np.ndarray, ok: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per item: mean over pos, mean over neg, their mean (over the framings present), and presence masks."""
    out = []
    for sel in (ok & is_pos, ok & ~is_pos):
        cnt = np.bincount(target[sel], minlength=n)
        tot = np.bincount(target[sel], weights=score[sel], minlength=n)
        out.append((np.divide(tot, cnt, out=np.zeros(n), where=cnt > 0), cnt > 0))
    (m_pos, has_pos), (m_neg, has_neg) = out
    n_fr = has_pos.astype(np.float64) + has_neg
    both = np.divide(
        np.where(has_pos, m_pos, 0.0) + np.where(has_neg, m_neg, 0.0), n_fr, out=np.zeros(n), where=n_fr > 0
    )
    return m_pos, has_pos, m_neg, has_neg, both, n_fr > 0


def priors_from_predictions(round0_predictions: pd.DataFrame, n_items: int) -> pd.DataFrame:
    """``priors.parquet``: per item the framing-averaged zero-shot log-odds (see the module docstring).

    Columns: item_id (every item 0..N-1), score = mean of score_pos and score_neg (whichever exist),
    score_pos / score_neg = mean over templates of that framing's answered scores, spread = std (ddof 0)
    across all answered variants (0 for one), n_missing = zero-shot rows of the item that are missing or
    have a non-finite score. Floats are nullable (pd.NA where an item has no answered variant), never
    NaN. Only zero_shot rows are used.
    """
    if isinstance(n_items, bool) or int(n_items) < 0:
        raise PriorsError(f"n_items = {n_items!r}: must be the number of items (>= 0)")
    n = int(n_items)
    pred = round0_predictions
    if "kind" in pred.columns:
        pred = pred[np.asarray(pred["kind"].astype("str"), dtype=object) == "zero_shot"]
    target, is_pos, score, ok = _usable(pred, n, "round-0 predictions")
    m_pos, has_pos, m_neg, has_neg, mean, has = _framing_means(target, is_pos, score, ok, n)
    cnt = np.bincount(target[ok], minlength=n)
    mu = np.divide(np.bincount(target[ok], weights=score[ok], minlength=n), cnt, out=np.zeros(n), where=cnt > 0)
    dev2 = np.bincount(target[ok], weights=(score[ok] - mu[target[ok]]) ** 2, minlength=n)
    spread = np.sqrt(np.divide(dev2, cnt, out=np.zeros(n), where=cnt > 0))
    return pd.DataFrame(
        {
            "item_id": np.arange(n, dtype=np.int64),
            "score": _nullable(mean, has),
            "score_pos": _nullable(m_pos, has_pos),
            "score_neg": _nullable(m_neg, has_neg),
            "spread": _nullable(spread, cnt > 0),
            "n_missing": np.bincount(target[~ok], minlength=n).astype(np.int64),
        }
    )


def _prior_scores(priors: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(score, present) of a priors frame indexed by item_id 0..N-1 (checked)."""
    if not {"item_id", "score"} <= set(priors.columns):
        raise PriorsError("priors needs columns item_id, score; pass priors.parquet from the priors stage")
    ids = np.asarray(priors["item_id"], dtype=np.int64)
    n = len(ids)
    if not np.array_equal(np.sort(ids), np.arange(n)):
        raise PriorsError("priors.item_id must be exactly 0..N-1; rebuild priors.parquet")
    raw = pd.to_numeric(priors["score"]).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    score = np.zeros(n)
    score[ids] = raw
    present = np.isfinite(score)
    return np.where(present, score, 0.0), present


def shown_from_priors(priors: pd.DataFrame) -> pd.DataFrame:
    """Labels shown in round 1: p_true = sigmoid(prior score); an item without a prior gets 0.5."""
    score, present = _prior_scores(priors)
    p = np.where(present, sigmoid(score), 0.5)
    return pd.DataFrame({"item_id": np.arange(len(p), dtype=np.int64), "p_true": p.astype(np.float64)})


def fit_loop_average(priors: pd.DataFrame, predictions_up_to_r: pd.DataFrame) -> pd.DataFrame:
    """``round{r}/fit.parquet`` (item_id, p_true): the labels shown next round, by plain averaging.

    Interim rule until the optimizer drives the loop: p_true = sigmoid(mean of the available of (prior
    score, few-shot score)), where the few-shot score is the framing-balanced mean (mean of the
    per-framing means) of the target's answered few_shot and flip scores in all rounds given; an item
    with neither gets 0.5. Every item of ``priors`` is present; no NaN.
    """
    prior, has_prior = _prior_scores(priors)
    n = len(prior)
    pred = predictions_up_to_r
    if "kind" not in pred.columns:
        raise PriorsError("predictions need a kind column; pass the query stage's predictions.parquet")
    pred = pred[np.isin(np.asarray(pred["kind"].astype("str"), dtype=object), FEW_SHOT_KINDS)]
    target, is_pos, score, ok = _usable(pred, n, "few-shot predictions")
    fs, has_fs = _framing_means(target, is_pos, score, ok, n)[4:]
    k = has_prior.astype(np.float64) + has_fs
    total = np.where(has_prior, prior, 0.0) + np.where(has_fs, fs, 0.0)
    z = np.divide(total, k, out=np.zeros(n), where=k > 0)
    p = np.where(k > 0, sigmoid(z), 0.5)
    return pd.DataFrame({"item_id": np.arange(n, dtype=np.int64), "p_true": p.astype(np.float64)})
