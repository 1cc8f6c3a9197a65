"""Vectorized loss terms: pure functions of (logits z [N], nuisance vector theta, Problem tensors).

Every term is a handful of tensor ops over the padded ``[T, K]`` tensors -- no Python loop over tuples or
items -- works in log space (``logsigmoid``/``logsumexp``), masks missing scores, and returns an exact 0 that
still carries a gradient when it has nothing to sum over. ``reference.py`` holds loop versions of the same
formulas; the tests check values and gradients against them.

The oracle model (shared by ``mutual``, ``nuisance``, ``flip`` and ``select``). For tuple t with target i:

    score_t = b_t + (signal + icl_gain * m_t) * (2 y_i - 1) + noise,   noise ~ N(0, noise_std^2)
    b_t     = copy * mean_k(shown_k) + position * shown_last + (acq_pos if framing pos else -acq_neg)

with shown labels coded +-1, and m_t = mean_k (2 q_k - 1) * shown_k the expected correctness of the shown
labels under the current labels (shown labels that are right make the oracle sharper: the in-context-learning
effect). Biases are *subtracted* before a score counts as evidence: the debiased score is d_t = scale *
(score_t - b_t) with scale = 2 * signal / noise_std^2, which is exactly the posterior log-odds of y_i = 1
under this model with a flat prior (the log-ratio of the two Gaussians), i.e. a calibrated soft label.

Why two terms. ``mutual`` fits labels to debiased scores (cross-entropy to a soft label); differentiating
that CE with respect to the biases is not a likelihood of the scores -- it would move the biases to make the
evidence agree with whatever the labels are (self-confirmation). So ``mutual`` and ``flip`` use theta
detached, and the biases are fitted by ``nuisance``, the Gaussian-mixture likelihood of the scores given the
current labels (labels detached there: it is the "M-step" for the oracle model). Both run jointly in the same
optimizer steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from elicit.contracts import ConsistencyRule
from elicit.optimize.problem import Problem

NUISANCE_NAMES: tuple[str, ...] = (
    "copy",
    "position",
    "acquiescence_pos",
    "acquiescence_neg",
    "icl_gain",
    "signal",
    "log_noise",
)
LOG_NOISE_RANGE = (math.log(0.05), math.log(100.0))
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_NEG_BIG = -1e30


def _zero(z: torch.Tensor) -> torch.Tensor:
    """An exact 0 connected to z, so ``backward`` works and gives zero gradients."""
    return z.sum() * 0.0


def init_nuisance(problem: Problem) -> torch.Tensor:
    """Starting nuisance vector: no biases, and signal / noise splitting the observed score variance in
    half."""
    _, std = problem.score_stats
    half = math.sqrt(max(0.5 * std * std, 1e-2))
    theta = torch.zeros(len(NUISANCE_NAMES), dtype=problem.dtype, device=problem.device)
    theta[5] = half
    theta[6] = min(max(math.log(half), LOG_NOISE_RANGE[0]), LOG_NOISE_RANGE[1])
    return theta


def noise_std(theta: torch.Tensor) -> torch.Tensor:
    return theta[6].clamp(*LOG_NOISE_RANGE).exp()


def evidence_scale(theta: torch.Tensor) -> torch.Tensor:
    """Multiplier turning a debiased score into posterior log-odds: 2 * signal / noise_std^2."""
    return 2.0 * theta[5] / noise_std(theta) ** 2


def bias(theta: torch.Tensor, problem: Problem) -> torch.Tensor:
    """b_t [T]: the part of each score explained by copying, position and acquiescence.

    b_t = copy * copy_feat + position * last_feat + (acq_pos if framing pos else -acq_neg), as one matvec.
    """
    return problem.bias_features @ theta[:4]


def debiased_score(theta: torch.Tensor | None, problem: Problem) -> torch.Tensor:
    """d_t [T]: scale * (score - bias); with ``theta=None`` the raw score (biases 0, scale 1)."""
    if theta is None:
        return problem.score
    return evidence_scale(theta) * (problem.score - bias(theta, problem))


def _gather(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """z[index] via index_select (its backward is an index_add: much cheaper than advanced indexing's)."""
    return z.index_select(0, index)


def context_mean(neg: torch.Tensor, pos: torch.Tensor, problem: Problem) -> torch.Tensor:
    """Per tuple, the mean over its real context entries of pos[k] (shown 1) or neg[k] (shown 0); 0 if none.

    ``neg``/``pos`` are per-item [N] values, so any function of z is evaluated N times, not T*K times.
    """
    table = torch.cat([neg, pos, neg.new_zeros(1)])
    return _gather(table, problem.ctx_code).view(problem.ctx_ids.shape).sum(1) * problem.inv_count


def context_log_weight(z: torch.Tensor, problem: Problem) -> torch.Tensor:
    """log w_t = mean_k log P_q(shown_k) over real context entries (0 for no context, i.e. w = 1)."""
    return context_mean(F.logsigmoid(-z), F.logsigmoid(z), problem)


def mutual(z: torch.Tensor, theta: torch.Tensor | None, problem: Problem) -> torch.Tensor:
    """Mutual predictability: sum_t w_t CE(q_target, sigmoid(d_t)) / sum_t w_t over non-missing scores.

    w_t = exp(mean_k log P_q(shown_k)) says how far the labels the oracle was shown agree with the current
    labels; the normalisation is a softmax over log w_t (exactly sum w CE / sum w, without underflow).
    Gradients flow through w_t, which is what lets flip pairs and shown labels inform the context items.
    theta is detached here.
    """
    if problem.n_tuples == 0:
        return _zero(z)
    log_w = context_log_weight(z, problem).masked_fill(~problem.has_score, _NEG_BIG)
    omega = torch.softmax(log_w, dim=0)
    d = debiased_score(None if theta is None else theta.detach(), problem)
    zt = _gather(z, problem.target)
    ce = -(torch.sigmoid(d) * F.logsigmoid(zt) + torch.sigmoid(-d) * F.logsigmoid(-zt))
    return (omega * problem.score_weight * ce).sum()


def score_loglik(z: torch.Tensor, theta: torch.Tensor, problem: Problem) -> torch.Tensor:
    """Per-tuple log-likelihood [T] of each score under the oracle model (labels q = sigmoid(z)); 0 where
    missing.

    log[ q_i N(s - b; a_t, sd) + (1 - q_i) N(s - b; -a_t, sd) ] with a_t = signal + icl_gain * m_t.
    This is the predictive model that ``select`` scores held-out tuples with.
    """
    sd = noise_std(theta)
    t = torch.tanh(0.5 * z)  # 2q - 1
    m = context_mean(-t, t, problem)  # mean_k (2 q_k - 1) * shown_k, shown coded +-1
    a = theta[5] + theta[4] * m
    r = problem.score - bias(theta, problem)
    zt = _gather(z, problem.target)
    log_norm = -sd.log() - _HALF_LOG_2PI
    l1 = F.logsigmoid(zt) - 0.5 * ((r - a) / sd) ** 2
    l0 = F.logsigmoid(-zt) - 0.5 * ((r + a) / sd) ** 2
    return (torch.logaddexp(l1, l0) + log_norm) * problem.score_weight


def nuisance(z: torch.Tensor, theta: torch.Tensor, problem: Problem) -> torch.Tensor:
    """Mean negative log-likelihood of the non-missing scores under the oracle model, labels detached."""
    if problem.n_tuples == 0:
        return _zero(z) + _zero(theta)
    n = problem.score_weight.sum().clamp_min(1)
    return -score_loglik(z.detach(), theta, problem).sum() / n


def flip(
    z: torch.Tensor,
    theta: torch.Tensor | None,
    problem: Problem,
    threshold: float = 0.6,
    scale: float = 1.0,
) -> torch.Tensor:
    """Flip-twin coupling evidence, trusted only for confident targets.

    For a flip row and its twin (same target i, one shown label of context item j flipped) the debiased change
    e = [(s_flip - s_twin) - (b_flip - b_twin)] * dir, dir = +1 when the flip row shows label 1 for j, is how
    much showing "j is 1" raised the target's log-odds beyond what copying/position explain. Under the oracle
    model the in-context effect makes e ~ icl_gain * (2y_i - 1)(2y_j - 1): positive when i and j share a
    label. So the pair says "i and j agree" with strength tanh(scale * e / 2) in (-1, 1), and the loss is
        -tanh(scale * e / 2) * (2 q_i - 1)(2 q_j - 1),
    (2q_i - 1)(2q_j - 1) = P(agree) - P(disagree). It is 0 when the evidence is 0 (no pull towards 0.5) and
    bounded. Only pairs with both scores and a target confidence |q_i - 0.5| + 0.5 > threshold (q detached)
    count; the loss is their mean.
    """
    if problem.n_flips == 0:
        return _zero(z)
    fr, tw = problem.flip_row, problem.twin_row
    ds = _gather(problem.score, fr) - _gather(problem.score, tw)
    if theta is not None:
        b = bias(theta.detach(), problem)
        ds = ds - (_gather(b, fr) - _gather(b, tw))
    e = ds * problem.flip_dir
    zi = _gather(z, _gather(problem.target, fr))
    zj = _gather(z, problem.flip_item)
    conf = (torch.sigmoid(zi.detach()) - 0.5).abs() + 0.5
    gate = _gather(problem.has_score, fr) & _gather(problem.has_score, tw) & (conf > threshold)
    loss = -torch.tanh(0.5 * scale * e) * torch.tanh(0.5 * zi) * torch.tanh(0.5 * zj)
    return (loss * gate).sum() / gate.sum().clamp_min(1)


def prior(z: torch.Tensor, problem: Problem) -> torch.Tensor:
    """Mean KL(Bernoulli(q_i) || Bernoulli(p_i)) to the calibrated zero-shot prior p (see calibrate_prior)."""
    rho = problem.prior_logit
    q = torch.sigmoid(z)
    kl = q * (F.logsigmoid(z) - F.logsigmoid(rho)) + (1 - q) * (F.logsigmoid(-z) - F.logsigmoid(-rho))
    return kl.mean()


def ranking(z: torch.Tensor, hi: torch.Tensor, lo: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Pairwise hinge against the prior's order: mean relu(margin - (z_hi - z_lo)) over sampled pairs."""
    if hi.numel() == 0:
        return _zero(z)
    return F.relu(margin - (_gather(z, hi) - _gather(z, lo))).mean()


def consistency(z: torch.Tensor, problem: Problem) -> torch.Tensor:
    """Mean over consistency groups of -log P(rule holds) with labels independent Bernoulli(q).

    Per subgroup a (one item, or for same_answer_same_label the items sharing an answer) let F_a = sum log(1
    - q) and U_a = sum log q (all false / all true). Then
      at_most_one_true / same_answer_same_label: log P = sum_a F_a + log(1 + sum_a exp(U_a - F_a))
      exactly_one_true:                           log P = sum_a F_a + log(sum_a exp(U_a - F_a))
    (a subgroup that is not uniform breaks same_answer_same_label; that mass is simply not counted). Segment
    sums use index_add and a detached segment max for the log-sum-exp.

    Why not the count of ``elicit.contracts.violations``: a count of violated pairs of hard labels has no
    gradient, so the fit needs this soft version, a probability over all labellings of each group. Both read the
    same layout (``Problem.consistency_layout``) and the rule's properties from ``ConsistencyRule``: at a hard
    labelling (q in {0, 1}) this term is 0 exactly when that labelling has no violations.
    """
    rule = problem.consistency_rule
    if problem.n_groups == 0 or rule is ConsistencyRule.NONE:
        return _zero(z)
    zi = _gather(z, problem.cons_item)
    s, g = problem.n_subgroups, problem.n_groups
    f_sub = z.new_zeros(s).index_add(0, problem.cons_sub, F.logsigmoid(-zi))
    u_sub = z.new_zeros(s).index_add(0, problem.cons_sub, F.logsigmoid(zi))
    x = u_sub - f_sub
    f_group = z.new_zeros(g).index_add(0, problem.sub_group, f_sub)
    with_none = not rule.needs_a_true  # the all-false labelling satisfies the rule
    init = z.new_zeros(g) if with_none else z.new_full((g,), -math.inf)
    m = init.scatter_reduce(0, problem.sub_group, x.detach(), reduce="amax", include_self=True)
    sum_exp = z.new_zeros(g).index_add(0, problem.sub_group, torch.exp(x - _gather(m, problem.sub_group)))
    if with_none:
        sum_exp = sum_exp + torch.exp(-m)
    log_p = f_group + m + sum_exp.log()
    return -log_p.mean()


def balance(z: torch.Tensor, target: float) -> torch.Tensor:
    """KL(Bernoulli(pi) || Bernoulli(mean q)): keeps the mean label near the gold-free class balance pi."""
    n = z.numel()
    log_qbar = torch.logsumexp(F.logsigmoid(z), 0) - math.log(n)
    log_rbar = torch.logsumexp(F.logsigmoid(-z), 0) - math.log(n)
    pi = min(max(float(target), 1e-6), 1 - 1e-6)
    return pi * (math.log(pi) - log_qbar) + (1 - pi) * (math.log(1 - pi) - log_rbar)


def entropy(z: torch.Tensor) -> torch.Tensor:
    """Mean binary entropy of q (nats); minimising it asks for confident labels."""
    q = torch.sigmoid(z)
    return -(q * F.logsigmoid(z) + (1 - q) * F.logsigmoid(-z)).mean()


def compute_losses(
    z: torch.Tensor,
    theta: torch.Tensor,
    problem: Problem,
    weights: dict[str, float],
    *,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
    flip_threshold: float = 0.6,
    flip_scale: float = 1.0,
    ranking_margin: float = 0.5,
    balance_target: float | None = None,
    use_nuisance: bool | None = None,
) -> dict[str, torch.Tensor]:
    """The unweighted value of every term named in ``weights`` (only those are computed).

    Biases are used (subtracted, scale applied) only when the ``nuisance`` term is on (or ``use_nuisance``);
    otherwise scores are taken at face value -- so switching ``nuisance`` off is a clean ablation.
    """
    if use_nuisance is None:
        use_nuisance = weights.get("nuisance", 0.0) > 0
    th = theta if use_nuisance else None
    out: dict[str, torch.Tensor] = {}
    for name in weights:
        if name == "mutual":
            out[name] = mutual(z, th, problem)
        elif name == "nuisance":
            out[name] = nuisance(z, theta, problem)
        elif name == "flip":
            out[name] = flip(z, th, problem, flip_threshold, flip_scale)
        elif name == "prior":
            out[name] = prior(z, problem)
        elif name == "ranking":
            hi, lo = pairs if pairs is not None else (z.new_zeros(0, dtype=torch.long),) * 2
            out[name] = ranking(z, hi, lo, ranking_margin)
        elif name == "consistency":
            out[name] = consistency(z, problem)
        elif name == "balance":
            out[name] = balance(z, problem.balance if balance_target is None else balance_target)
        elif name == "entropy":
            out[name] = entropy(z)
        else:
            raise ValueError(f"unknown loss term '{name}'")
    return out


MEANINGS: dict[str, str] = {
    "copy": "log-odds the oracle adds towards label 1 per unit of mean shown label (shown labels coded "
    "+1/-1; +1 = every shown label was 1): how strongly it copies the labels it is shown",
    "position": "log-odds added towards the label of the LAST shown example (coded +1/-1): recency bias",
    "acquiescence_pos": "log-odds the oracle adds towards answering 'True' under the positive framing "
    "(there 'True' means label 1)",
    "acquiescence_neg": "log-odds the oracle adds towards answering 'True' under the negated framing "
    "(there 'True' means label 0, so it lowers the label-1 score)",
    "icl_gain": "extra separation (log-odds) of the two classes when all shown labels agree with the fitted "
    "labels, compared with random shown labels: how much correct examples help",
    "signal": "half the mean log-odds gap between a label-1 and a label-0 target (few-shot, debiased)",
    "noise_std": "standard deviation of a single few-shot score around its class mean (log-odds)",
    "scale": "2*signal/noise_std^2: multiply a debiased score by this to get calibrated log-odds of label 1",
}


def nuisance_report(theta: torch.Tensor, fitted: bool) -> dict[str, object]:
    """Plain JSON-ready dict of the fitted oracle biases with a sentence per value (for
    seed<s>.nuisance.json)."""
    v = [float(x) for x in theta.detach().cpu().tolist()]
    values = {
        "copy": v[0],
        "position": v[1],
        "acquiescence_pos": v[2],
        "acquiescence_neg": v[3],
        "icl_gain": v[4],
        "signal": v[5],
        "noise_std": float(noise_std(theta.detach()).cpu()),
        "scale": float(evidence_scale(theta.detach()).cpu()),
    }
    out: dict[str, object] = dict(values)
    if not fitted:  # what the fit actually used: no biases, raw scores (scale 1), no oracle model
        out.update(signal=None, noise_std=None, scale=1.0)
    out["fitted"] = fitted
    out["meaning"] = dict(MEANINGS)
    if fitted:
        out["summary"] = (
            f"your oracle copies shown labels with strength {values['copy']:.2f} log-odds, leans "
            f"{values['position']:.2f} towards the last shown label, and adds "
            f"{values['acquiescence_pos']:.2f} / {values['acquiescence_neg']:.2f} log-odds towards 'True' "
            "under the positive / negated framing"
        )
    else:
        out["summary"] = "biases not fitted (nuisance weight 0): scores were taken at face value"
    return out
