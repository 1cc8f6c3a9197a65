"""Templates, prompt rendering and the context token budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elicit.prompts import (
    ContextOverflowError,
    Template,
    TemplateError,
    answer_word,
    estimate_tokens,
    fit_context,
    load_all_templates,
    load_templates,
    render_chat,
    render_completion,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "templates.yaml"
DATASETS = [
    "ethics",
    "ethics_commonsense",
    "machiavelli",
    "ethics_justice",
    "ethics_deontology",
    "ethics_virtue",
    "truthfulqa",
    "gsm8k",
    "gsm8k_pairs",
    "larger_than",
    "political_normative",
    "mfv",
    "daily_dilemmas",
]
T = Template(id="t", pos="Is the narrator's action clearly morally wrong?", neg="Is it acceptable?", item="Scenario")


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_has_templates(dataset: str) -> None:
    temps = load_templates(TEMPLATES, dataset)
    assert len(temps) >= 2  # a template ensemble: each template is one more worker for Dawid-Skene
    assert len({t.pos for t in temps}) == len(temps) and len({t.neg for t in temps}) == len(temps)
    assert all(t.pos != t.neg and "True or False" in t.question("pos") for t in temps)


def test_template_ids_name_one_template_across_file() -> None:
    by_id: dict[str, Template] = {}
    for temps in load_all_templates(TEMPLATES).values():
        for t in temps:
            assert by_id.setdefault(t.id, t) == t  # an id shared by aliases means the same template


def test_answer_label_does_not_clash_with_labels_in_texts() -> None:
    for temps in load_all_templates(TEMPLATES).values():
        for t in temps:
            assert t.answer not in (t.item, "Question", "Claim", "Solution", "Final answer")
    for pol in load_templates(TEMPLATES, "political_normative"):
        assert pol.answer != "Answer"  # its texts are "Question: ...\nAnswer: ..."


def test_empty_item_label_renders_text_alone() -> None:
    t = Template(id="x", pos="Is the claim true?", neg="Is the claim false?", item="")
    p = render_completion(t, "pos", "Question: Q?\nClaim: C.", [("Question: A?\nClaim: B.", 1)])
    assert p.endswith("Question: A?\nClaim: B.\nAnswer: True\n\nQuestion: Q?\nClaim: C.\nAnswer:")


def test_unknown_dataset_falls_back_to_default() -> None:
    assert load_templates(TEMPLATES, "no_such_dataset") == load_all_templates(TEMPLATES)["default"]


def test_ethics_framing_meaning() -> None:
    t = load_templates(TEMPLATES, "ethics")[0]
    assert "morally wrong" in t.pos and "acceptable" in t.neg


def test_bad_templates_file(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    words_error = r"'answer_words' must be two different single words"
    for body, error in [
        ("neeg: N?", r"ethics\[0\]: unknown key\(s\) \['neeg'\]"),
        ("", r"key 'neg' \(the negated question\) is missing; .*neg: null"),
        ("neg: ''", r"key 'neg' must be a non-empty string, or null"),
        ("neg: N?\n    answer_words: [Yes, No]", r"holds booleans .*quote the words"),
        *(
            (f"neg: N?\n    answer_words: {w}", words_error)
            for w in ("['Yes']", "['Yes', 'yes']", "['Yes', 'No way']", "'Yes'")
        ),
    ]:
        p.write_text(f"ethics:\n  - id: a\n    pos: Q?\n    {body}\n")
        with pytest.raises(TemplateError, match=error):
            load_templates(p, "ethics")
    with pytest.raises(TemplateError, match="not found"):
        load_templates(tmp_path / "missing.yaml", "ethics")
    p.write_text('ethics:\n  - {id: a, pos: "Q?", neg: "N?"}\n')
    with pytest.raises(TemplateError, match="no 'default' entry"):
        load_templates(p, "mfv")
    p.write_text("ethics: [a: b\n")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_templates(p, "ethics")


def test_answer_word_per_framing() -> None:
    assert answer_word("pos", 1) == "True" and answer_word("pos", 0) == "False"
    assert answer_word("neg", 1) == "False" and answer_word("neg", 0) == "True"
    with pytest.raises(ValueError):
        answer_word("both", 1)


def test_render_completion_zero_shot() -> None:
    p = render_completion(T, "pos", "I lied.")
    assert p == ("Is the narrator's action clearly morally wrong? Answer True or False.\n\nScenario: I lied.\nAnswer:")


def test_render_completion_few_shot_renders_shown_labels_as_framing_words() -> None:
    ctx = [("I hit a dog.", 1), ("I fed a dog.", 0)]
    pos = render_completion(T, "pos", "I lied.", ctx)
    neg = render_completion(T, "neg", "I lied.", ctx)
    assert "Scenario: I hit a dog.\nAnswer: True\n\nScenario: I fed a dog.\nAnswer: False" in pos
    assert "Scenario: I hit a dog.\nAnswer: False\n\nScenario: I fed a dog.\nAnswer: True" in neg
    assert pos.startswith(T.question("pos")) and neg.startswith(T.question("neg"))
    assert pos.endswith("Scenario: I lied.\nAnswer:")


def test_render_chat_is_one_user_message() -> None:
    msgs = render_chat(T, "neg", "I lied.", [("x", 1)])
    assert msgs == [{"role": "user", "content": render_completion(T, "neg", "I lied.", [("x", 1)])}]


def test_fit_context_unchanged_when_it_fits() -> None:
    ctx = [("short one", 1), ("short two", 0)]
    fitted = fit_context(T, "pos", "target", ctx, n_ctx=2048)
    assert fitted.context == ctx and fitted.truncated == fitted.skipped == 0
    assert fitted.prompt_tokens == estimate_tokens(render_completion(T, "pos", "target", ctx))


def test_fit_context_truncates_long_items_keeps_short_ones() -> None:
    ctx = [("long " * 400, 1), ("short", 0), ("long " * 400, 0)]
    fitted = fit_context(T, "pos", "target", ctx, n_ctx=512, margin=32)
    assert fitted.truncated == 2 and fitted.skipped == 0
    assert fitted.context[1] == ("short", 0)
    assert [s for _, s in fitted.context] == [1, 0, 0]
    assert estimate_tokens(render_completion(T, "pos", "target", fitted.context)) <= 512 - 32


def test_fit_context_skips_earliest_items_when_shares_get_too_small() -> None:
    ctx = [(f"item {i} " * 30, i % 2) for i in range(12)]
    fitted = fit_context(T, "pos", "target", ctx, n_ctx=256, margin=16, min_item_tokens=24)
    assert fitted.skipped > 0
    assert fitted.context[-1][1] == ctx[-1][1]  # the last shown label keeps its place
    assert estimate_tokens(render_completion(T, "pos", "target", fitted.context)) <= 256 - 16


def test_fit_context_target_alone_too_long() -> None:
    with pytest.raises(ContextOverflowError, match="the target alone needs"):
        fit_context(T, "pos", "word " * 1000, [], n_ctx=256)


def test_fit_context_uses_tokenizer_callable() -> None:
    def words(text: str) -> int:
        return len(text.split())

    ctx = [("a b c d e f g h i j " * 20, 1), ("k l m " * 20, 0)]
    fitted = fit_context(T, "pos", "target", ctx, n_ctx=150, margin=10, count_tokens=words)
    assert words(render_completion(T, "pos", "target", fitted.context)) <= 140
    assert fitted.truncated + fitted.skipped > 0


def test_fit_context_chat_reserves_template_overhead() -> None:
    ctx = [("x " * 600, 1)]
    plain = fit_context(T, "pos", "t", ctx, n_ctx=300, margin=0)
    chat = fit_context(T, "pos", "t", ctx, n_ctx=300, margin=0, chat=True)
    assert len(chat.context[0][0]) < len(plain.context[0][0])


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=3000), min_size=0, max_size=10),
    n_ctx=st.integers(min_value=128, max_value=4096),
    chat=st.booleans(),
)
def test_fit_context_always_within_budget(lengths: list[int], n_ctx: int, chat: bool) -> None:
    ctx = [("y" * n, i % 2) for i, n in enumerate(lengths)]
    fitted = fit_context(T, "neg", "the target", ctx, n_ctx=n_ctx, margin=16, chat=chat)
    assert fitted.prompt_tokens <= n_ctx - 16
    assert len(fitted.context) + fitted.skipped == len(ctx)
    assert [s for _, s in fitted.context] == [s for _, s in ctx][fitted.skipped :]


def test_answer_words_render_and_default_instruction(tmp_path: Path) -> None:
    """Yes/No templates: shown labels in those words, the instruction names them, True/False stays the default."""
    p = tmp_path / "t.yaml"
    p.write_text("d:\n  - id: yn\n    pos: Is it so?\n    neg: Is it not so?\n    answer_words: ['Yes', 'No']\n")
    t = load_templates(p, "d")[0]
    assert t.answer_words == ("Yes", "No") and t.instruction == "Answer Yes or No."
    pos = render_completion(t, "pos", "C.", [("A.", 1), ("B.", 0)])
    assert pos.startswith("Is it so? Answer Yes or No.") and "A.\nAnswer: Yes" in pos and "B.\nAnswer: No" in pos
    neg = render_completion(t, "neg", "C.", [("A.", 1)])
    assert "A.\nAnswer: No" in neg  # label 1 under the negated question
    assert answer_word("pos", 1) == "True" and answer_word("neg", 1, ("Yes", "No")) == "No"


def test_template_without_negation_is_positive_only(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(
        "d:\n  - id: q\n    pos: Answer Yes or No.\n    neg: null\n    instruction: ''\n    item: Question\n"
        "    answer_words: ['Yes', 'No']\n"
    )
    t = load_templates(p, "d")[0]
    assert t.neg is None
    assert render_completion(t, "pos", "Is a dog an animal?", [("Is a cup an animal?", 0)]) == (
        "Answer Yes or No.\n\nQuestion: Is a cup an animal?\nAnswer: No\n\nQuestion: Is a dog an animal?\nAnswer:"
    )
    with pytest.raises(TemplateError, match=r"template 'q' has no negative question.*both_framings: false"):
        render_completion(t, "neg", "Is a dog an animal?")
