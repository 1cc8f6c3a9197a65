"""Prompt templates and rendering for True/False questions.

A template phrases one question two ways: the *positive* framing, where the answer "True" means label 1,
and the *negative* framing (the negated question), where "True" means label 0. Shown context labels are
stored as label values (0/1) and rendered as the framing's answer word, so the same context reads
"True" under one framing and "False" under the other. Prompts stay short because, on the embedded
llama.cpp server, a call costs roughly its number of prompt tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from elicit.errors import ElicitError

Framing = Literal["pos", "neg"]
FRAMINGS: tuple[str, ...] = ("pos", "neg")
DEFAULT_ANSWER_WORDS: tuple[str, str] = ("True", "False")
DEFAULT_INSTRUCTION = "Answer True or False."
TRUNCATION_MARK = "…"
CHARS_PER_TOKEN = 3.5
CHAT_OVERHEAD_TOKENS = 12
"""Tokens a chat template adds around one user message (role markers); an estimate, kept generous."""


class TemplateError(ElicitError, ValueError):
    """A templates file or a template entry is malformed (message names the file, key and fix)."""


@dataclass(frozen=True)
class Template:
    """One question, phrased positively and negatively.

    id: stored in each query row's `template_id`.
    pos: question whose answer "True" (the first answer word) means label 1.
    neg: the negated question, whose answer "True" means label 0; None for a template that is asked in the
        positive framing only (its runs set ``budget.both_framings: false`` and the baselines' framings ``[pos]``).
    item: name printed before each item's text ("Scenario"); empty when the text carries its own labels
        ("Question: ...\nClaim: ...").
    answer: name printed before the answer word ("Answer").
    instruction: appended to the question; makes small models answer with the answer words (default "Answer
        True or False.", or "Answer <yes word> or <no word>." for other answer words).
    answer_words: the words that say label 1 / label 0 under the positive framing (default True / False; e.g.
        Yes / No for items that are questions). The oracle reads the first token's log-probabilities of these.
    """

    id: str
    pos: str
    neg: str | None
    item: str = "Claim"
    answer: str = "Answer"
    instruction: str = DEFAULT_INSTRUCTION
    answer_words: tuple[str, str] = DEFAULT_ANSWER_WORDS

    def question(self, framing: str) -> str:
        """The question of a framing, with the instruction."""
        _check_framing(framing)
        if framing == "neg" and self.neg is None:
            raise TemplateError(
                f"template '{self.id}' has no negative question (neg); add one, or ask this run in the positive "
                "framing only (budget.both_framings: false; baselines.fewshot.framings and "
                "baselines.icm_budget.framings: [pos])"
            )
        q = self.pos if framing == "pos" else self.neg
        return f"{q} {self.instruction}".strip()


def _check_framing(framing: str) -> None:
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be 'pos' or 'neg', got {framing!r}")


def answer_word(framing: str, label: int, words: tuple[str, str] = DEFAULT_ANSWER_WORDS) -> str:
    """The answer word that states `label` under `framing` (pos: 1→True; neg: 1→False; `words` = the template's
    (True, False) words)."""
    _check_framing(framing)
    if int(label) not in (0, 1):
        raise ValueError(f"shown label must be 0 or 1, got {label!r}")
    says_true = (int(label) == 1) == (framing == "pos")
    return words[0] if says_true else words[1]


_TEMPLATE_KEYS = {"id", "pos", "neg", "item", "answer", "instruction", "answer_words"}


def _answer_words(value: Any, where: str) -> tuple[str, str]:
    """Two distinct single words (the model's first answer token must be able to be one of them)."""
    if isinstance(value, list | tuple) and any(isinstance(w, bool) for w in value):
        raise TemplateError(
            f"{where}: key 'answer_words' holds booleans ({value!r}): YAML reads unquoted Yes/No/True/False as "
            'booleans; quote the words, e.g. answer_words: ["Yes", "No"]'
        )
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(w, str) and w.strip() and w.strip() == w and " " not in w for w in value)
        and value[0].lower() != value[1].lower()
    )
    if not ok:
        raise TemplateError(
            f"{where}: key 'answer_words' must be two different single words, the one meaning true first "
            f'(e.g. ["Yes", "No"]); got {value!r}'
        )
    return str(value[0]), str(value[1])


def _parse_template(entry: Any, where: str) -> Template:
    if not isinstance(entry, Mapping):
        raise TemplateError(f"{where}: a template must be a mapping with id, pos, neg; got {type(entry).__name__}")
    unknown = set(entry) - _TEMPLATE_KEYS
    if unknown:
        raise TemplateError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TEMPLATE_KEYS)}",
        )
    for key in ("id", "pos"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise TemplateError(f"{where}: key '{key}' must be a non-empty string")
    if "neg" not in entry:
        raise TemplateError(
            f"{where}: key 'neg' (the negated question) is missing; give one, or neg: null for a template asked in "
            "the positive framing only"
        )
    if entry["neg"] is not None and (not isinstance(entry["neg"], str) or not entry["neg"].strip()):
        raise TemplateError(f"{where}: key 'neg' must be a non-empty string, or null (positive framing only)")
    for key in ("item", "answer", "instruction"):
        if key in entry and not isinstance(entry[key], str):
            raise TemplateError(f"{where}: key '{key}' must be a string (use \"\" for none)")
    if "answer" in entry and not entry["answer"].strip():
        raise TemplateError(f"{where}: key 'answer' must not be empty (it precedes the answer word)")
    fields: dict[str, Any] = {k: v if v is None else str(v) for k, v in entry.items() if k != "answer_words"}
    if "answer_words" in entry:
        words = _answer_words(entry["answer_words"], where)
        fields["answer_words"] = words
        fields.setdefault("instruction", f"Answer {words[0]} or {words[1]}.")
    return Template(**fields)


def load_all_templates(path: str | Path) -> dict[str, list[Template]]:
    """Every dataset's templates in a templates file, checked (ids unique within a dataset)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TemplateError(f"templates file {path} not found; pass the path of data/templates.yaml") from exc
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TemplateError(f"{path}: not valid YAML ({first}); fix the file") from exc
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{path}: top level must map dataset names to lists of templates")
    out: dict[str, list[Template]] = {}
    for name, entries in raw.items():
        if not isinstance(entries, list) or not entries:
            raise TemplateError(f"{path}: '{name}' must be a non-empty list of templates")
        temps = [_parse_template(e, f"{path}: {name}[{i}]") for i, e in enumerate(entries)]
        ids = [t.id for t in temps]
        if len(set(ids)) != len(ids):
            raise TemplateError(f"{path}: '{name}' has duplicate template ids {ids}; make them unique")
        out[str(name)] = temps
    return out


def load_templates(path: str | Path, dataset: str) -> list[Template]:
    """The templates of `dataset`, or those of `default` when the dataset has none."""
    all_t = load_all_templates(path)
    if dataset in all_t:
        return all_t[dataset]
    if "default" in all_t:
        return all_t["default"]
    raise TemplateError(f"{path}: no templates for dataset '{dataset}' and no 'default' entry; add one")


def _block(template: Template, text: str, answer: str | None) -> str:
    tail = f" {answer}" if answer is not None else ""
    head = f"{template.item}: {text}" if template.item else text  # empty item: the text has its own labels
    return f"{head}\n{template.answer}:{tail}"


def render_completion(
    template: Template,
    framing: str,
    target_text: str,
    context: Sequence[tuple[str, int]] = (),
) -> str:
    """A completion prompt whose next token is the answer word.

    The question comes first so that all prompts of one template and framing share a prefix (the
    llama.cpp server reuses the previous prompt's cache); then each context item with its shown label
    as the framing's answer word; then the target, ending in "Answer:".
    """
    parts = [template.question(framing)]
    words = template.answer_words
    parts.extend(_block(template, text, answer_word(framing, shown, words)) for text, shown in context)
    parts.append(_block(template, target_text, None))
    return "\n\n".join(parts)


def render_chat(
    template: Template,
    framing: str,
    target_text: str,
    context: Sequence[tuple[str, int]] = (),
) -> list[dict[str, str]]:
    """Chat messages for the same prompt: one user message, so the assistant's first token is the answer."""
    return [{"role": "user", "content": render_completion(template, framing, target_text, context)}]


def estimate_tokens(text: str) -> int:
    """Token estimate without a tokenizer (chars / 3.5, rounded up); good to ~20 % for English."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class FittedContext:
    """Context that fits the token budget, and how it was changed (reported in telemetry)."""

    context: list[tuple[str, int]]
    truncated: int
    skipped: int
    prompt_tokens: int


class ContextOverflowError(ElicitError, ValueError):
    """The target alone does not fit the context size."""


def _truncate(text: str, max_tokens: int, count: Callable[[str], int]) -> str:
    """Cut `text` to about `max_tokens` tokens, adding a mark; shrinks until the count fits."""
    n = count(text)
    if n <= max_tokens:
        return text
    chars = max(1, int(len(text) * max_tokens / max(n, 1)))
    while chars > 1:
        cut = text[:chars].rstrip() + TRUNCATION_MARK
        if count(cut) <= max_tokens:
            return cut
        chars = int(chars * 0.85)
    return text[:1] + TRUNCATION_MARK


def fit_context(
    template: Template,
    framing: str,
    target_text: str,
    context: Sequence[tuple[str, int]],
    n_ctx: int | None,
    margin: int = 64,
    count_tokens: Callable[[str], int] | None = None,
    chat: bool = False,
    min_item_tokens: int = 24,
) -> FittedContext:
    """Shrink the context so the prompt stays below `n_ctx - margin` tokens.

    Why: a prompt over the server's context size is an error, and long few-shot prompts are what makes
    calls slow. Long context items are truncated first (equal shares of the space left, short items
    kept whole); when a share would fall below `min_item_tokens`, the earliest item (farthest from the
    target, so the last shown label keeps its position) is skipped instead. The target is never cut:
    if it alone does not fit, ContextOverflowError says so.
    """
    count = count_tokens or estimate_tokens
    extra = CHAT_OVERHEAD_TOKENS if chat else 0
    ctx = [(str(t), int(s)) for t, s in context]

    def total(c: Sequence[tuple[str, int]]) -> int:
        return count(render_completion(template, framing, target_text, c)) + extra

    full = total(ctx)
    if n_ctx is None:
        return FittedContext(ctx, 0, 0, full)
    budget = n_ctx - margin
    if full <= budget:
        return FittedContext(ctx, 0, 0, full)
    bare = total([])
    if bare > budget:
        raise ContextOverflowError(
            f"the target alone needs ~{bare} prompt tokens, over n_ctx {n_ctx} minus margin {margin}",
        )
    skipped = 0
    while ctx:
        # Space per item for its text: what is left after the bare prompt and each item's fixed part.
        fixed = [total([("", s)]) - bare for _, s in ctx]
        room = budget - bare - sum(fixed)
        lengths = [count(t) for t, _ in ctx]
        share = _water_fill(lengths, room)
        if share is not None and share >= min_item_tokens:
            truncated = sum(1 for n in lengths if n > share)
            cut = [(_truncate(t, share, count), s) for t, s in ctx]
            while total(cut) > budget and share > min_item_tokens:
                share = int(share * 0.9)
                cut = [(_truncate(t, share, count), s) for t, s in ctx]
            if total(cut) <= budget:
                truncated = sum(1 for (a, _), (b, _) in zip(ctx, cut, strict=True) if a != b)
                return FittedContext(cut, truncated, skipped, total(cut))
        ctx = ctx[1:]
        skipped += 1
        if total(ctx) <= budget:
            return FittedContext(ctx, 0, skipped, total(ctx))
    return FittedContext([], 0, skipped, bare)


def _water_fill(lengths: Sequence[int], room: int) -> int | None:
    """The largest per-item cap c with sum(min(n, c)) <= room (None if room < 0)."""
    if room < 0:
        return None
    if sum(lengths) <= room:
        return max(lengths, default=0)
    rest = room
    remaining = sorted(lengths)
    k = len(remaining)
    for i, n in enumerate(remaining):
        cap = rest // (k - i)
        if n > cap:
            return cap
        rest -= n
    return max(lengths)
