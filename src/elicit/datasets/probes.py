"""Probe datasets: claims generated with known truth, to find a task on which a small model's in-context examples
matter (issue 16; ``benchmarks/signal_search.py`` measures them).

Why generated: the truth is checkable by construction (a dog is an animal, 37 > 12, 7 + 5 = 12), the word lists are
the project's own (no licence question), and a second, disjoint split can confirm a finding on items the search
never saw. Every probe has the natural consistency structure of its task under one of the project's rules
(:class:`~elicit.contracts.ConsistencyRule`), and every group is balanced, so the classes are too.

- ``pool(probe, split)``: all groups of a split, fixed by the word lists alone (no seed). The two splits share no
  item text: ``main`` and ``fresh`` take alternate halves of the keys that make the texts (nouns, countries, antonym
  pairs, number pairs, sentence subjects), halves fixed by a hash of each key, not by list order.
- :func:`probe_items`: a seed draws ``n`` items as whole groups in random order; inside groups the true members are
  put where the sample has had the fewest so far (ties at random), so no position within a group predicts gold.

Items are the project's items table (``ITEM_COLUMNS`` + ``OPTIONAL_COLUMNS``, checked with ``validate_items``)
plus ``question``: the same claim as a yes/no question ("Is a dog an animal?"), for prompts that ask questions.
The splits are shipped as ``data/probes/<name>_<split>.csv`` (``python -m elicit.datasets.probes`` writes them; a
test checks they are what the generators make), which the builtins ``probe_<name>`` load for pipeline runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from elicit.contracts.consistency import ConsistencyRule
from elicit.datasets.items import ITEM_COLUMNS, OPTIONAL_COLUMNS, DataError, validate_items

Split = Literal["main", "fresh"]
SPLITS: tuple[str, ...] = get_args(Split)
PROBE_COLUMNS = [*ITEM_COLUMNS, *OPTIONAL_COLUMNS, "question"]
"""Columns of a probe's items: the project's items table plus the yes/no question form of each claim."""


@dataclass(frozen=True)
class Claim:
    """One generated item: the claim, its yes/no question form, its truth and (arithmetic) its stated answer."""

    text: str
    question: str
    gold: int
    answer_key: str | None = None


Group = tuple[Claim, ...]


@dataclass(frozen=True)
class Probe:
    """A probe task: what label 1 means, the rule its groups obey, and its deterministic pool of groups."""

    name: str
    label_meaning: str
    rule: ConsistencyRule
    group_size: int
    build: Callable[[Split], list[Group]]


# ---------------------------------------------------------------------------------------------- helpers


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def _half(keys: Sequence[str], salt: str, split: Split) -> list[str]:
    """The keys of one split: keys sorted by a hash, alternate ones to ``main`` and ``fresh`` (halves differ by at
    most one, and a key's split does not depend on where it sits in a list)."""
    if split not in SPLITS:
        raise DataError(f"unknown probe split {split!r}; use one of {', '.join(SPLITS)}")
    position = {k: i for i, k in enumerate(keys)}
    ranked = sorted(keys, key=lambda k: (_digest(f"{salt}:{k}"), k))
    return sorted(ranked[SPLITS.index(split) :: 2], key=position.__getitem__)


def _pick(options: Sequence[str], key: str) -> str:
    """A fixed choice among ``options`` for ``key`` (pools must not depend on the sampling seed)."""
    return options[_digest(key) % len(options)]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# ---------------------------------------------------------------------------------------------- categories

# category -> (how a claim names it, members as they appear in a claim). Words with a second common meaning in
# another category (orange, olive, mouse, bat, crane, jaguar, file, fan) are left out.
CATEGORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "animal": (
        "an animal",
        ("a dog", "a cat", "a horse", "a cow", "a sheep", "a pig", "a goat", "a lion", "a tiger", "a bear",
         "a wolf", "a fox", "a rabbit", "an elephant", "a giraffe", "a zebra", "a monkey", "a deer", "a camel",
         "a duck", "an owl", "an eagle", "a frog", "a snake", "a whale", "a dolphin"),
    ),
    "furniture": (
        "a piece of furniture",
        ("a chair", "a table", "a sofa", "a bed", "a desk", "a stool", "a bench", "a wardrobe", "a cupboard",
         "a bookcase", "a dresser", "an armchair", "a couch", "a cabinet", "a nightstand", "a futon", "a crib",
         "a recliner"),
    ),
    "fruit": (
        "a fruit",
        ("an apple", "a banana", "a pear", "a peach", "a plum", "a cherry", "a grape", "a lemon", "a mango",
         "a melon", "a kiwi", "an apricot", "a pineapple", "a strawberry", "a coconut", "a fig", "a papaya",
         "a watermelon"),
    ),
    "vehicle": (
        "a vehicle",
        ("a car", "a bus", "a truck", "a bicycle", "a motorcycle", "a train", "a tram", "a van", "a taxi",
         "a tractor", "a scooter", "a lorry", "a jeep", "a minibus", "an ambulance", "a limousine", "a moped",
         "a fire engine"),
    ),
    "tool": (
        "a tool",
        ("a hammer", "a saw", "a screwdriver", "a wrench", "a drill", "a chisel", "an axe", "a shovel", "a spade",
         "a rake", "a trowel", "a crowbar", "a mallet", "a hoe", "a sickle", "a spanner", "a hacksaw",
         "a pickaxe"),
    ),
    "instrument": (
        "a musical instrument",
        ("a piano", "a guitar", "a violin", "a drum", "a flute", "a trumpet", "a cello", "a harp", "a saxophone",
         "a clarinet", "a trombone", "a banjo", "an oboe", "an accordion", "a tuba", "a ukulele", "a harmonica",
         "a xylophone"),
    ),
    "clothing": (
        "an item of clothing",
        ("a shirt", "a skirt", "a jacket", "a coat", "a sweater", "a dress", "a scarf", "a sock", "a glove",
         "a blouse", "a hoodie", "a cardigan", "a raincoat", "a tunic", "a kilt", "a shawl", "a vest", "a hat"),
    ),
    "colour": (
        "a colour",
        ("red", "blue", "green", "yellow", "purple", "pink", "brown", "black", "white", "grey", "violet",
         "turquoise", "crimson", "scarlet", "indigo", "beige", "maroon", "magenta"),
    ),
}  # fmt: skip
WRONG_EXCLUDED: dict[str, frozenset[str]] = {
    "fruit": frozenset({"colour"}),  # "a peach", "a plum", "a cherry" also name colours
    "vehicle": frozenset({"tool"}),  # "a car is a tool" is arguable
    "instrument": frozenset({"tool"}),
    "furniture": frozenset({"tool"}),
}
"""Wrong categories never offered for a member of a category, where the claim could be read as true."""


def _categories(split: Split) -> list[Group]:
    """One group per noun: the true category and one wrong one (exactly one true)."""
    groups: list[Group] = []
    for cat, (phrase, members) in CATEGORIES.items():
        wrong_cats = [c for c in CATEGORIES if c != cat and c not in WRONG_EXCLUDED.get(cat, frozenset())]
        for noun in _half(members, "categories", split):
            wrong = CATEGORIES[_pick(wrong_cats, f"categories:{noun}")][0]
            groups.append(
                (
                    Claim(f"{_cap(noun)} is {phrase}.", f"Is {noun} {phrase}?", 1),
                    Claim(f"{_cap(noun)} is {wrong}.", f"Is {noun} {wrong}?", 0),
                )
            )
    return groups


# ---------------------------------------------------------------------------------------------- numbers


def _comparisons(split: Split) -> list[Group]:
    """Pairs of numbers 1..99 as claim and converse ("37 is larger than 12." / "12 is larger than 37."): exactly one
    is true."""
    pairs = [f"{a},{b}" for a in range(1, 100) for b in range(a + 1, 100)]
    groups: list[Group] = []
    for key in _half(pairs, "comparisons", split):
        small, big = (int(x) for x in key.split(","))
        groups.append(
            (
                Claim(f"{big} is larger than {small}.", f"Is {big} larger than {small}?", 1),
                Claim(f"{small} is larger than {big}.", f"Is {small} larger than {big}?", 0),
            )
        )
    return groups


WRONG_OFFSETS = ("-10", "-2", "-1", "1", "2", "10")
"""How far a wrong sum is from the right one (off-by-one, -two and -ten slips)."""


def _arithmetic(split: Split) -> list[Group]:
    """Sums of two numbers 2..49, each written in both orders with the right and one wrong answer: the two items
    stating one answer share its label, and at most one answer is true (``same_answer_same_label``)."""
    pairs = [f"{a},{b}" for a in range(2, 50) for b in range(a + 1, 50)]
    groups: list[Group] = []
    for key in _half(pairs, "arithmetic", split):
        a, b = (int(x) for x in key.split(","))
        right = a + b
        wrong = right + int(_pick(WRONG_OFFSETS, f"arithmetic:{key}"))
        members = []
        for total, gold in ((right, 1), (wrong, 0)):
            for x, y in ((a, b), (b, a)):
                members.append(Claim(f"{x} + {y} = {total}.", f"Does {x} + {y} equal {total}?", gold, str(total)))
        groups.append(tuple(members))
    return groups


# ---------------------------------------------------------------------------------------------- words

# Antonym pairs in clusters; a wrong answer comes from another cluster, so that no wrong claim is a second,
# looser antonym ("the opposite of soft is loud"). Each word is in one pair only.
ANTONYMS: dict[str, tuple[tuple[str, str], ...]] = {
    "place": (("up", "down"), ("high", "low"), ("above", "below"), ("top", "bottom"), ("inside", "outside"),
              ("front", "back"), ("left", "right"), ("north", "south"), ("east", "west"), ("deep", "shallow"),
              ("push", "pull"), ("arrive", "leave")),
    "time": (("early", "late"), ("first", "last"), ("before", "after"), ("start", "finish"), ("always", "never"),
             ("ancient", "modern"), ("old", "young")),
    "amount": (("big", "small"), ("tall", "short"), ("thick", "thin"), ("wide", "narrow"), ("full", "empty"),
               ("more", "less"), ("increase", "decrease"), ("add", "subtract"), ("cheap", "expensive"),
               ("rich", "poor")),
    "people": (("happy", "sad"), ("love", "hate"), ("laugh", "cry"), ("brave", "cowardly"), ("polite", "rude"),
               ("friend", "enemy"), ("male", "female"), ("guilty", "innocent"), ("generous", "selfish"),
               ("win", "lose")),
    "quality": (("hot", "cold"), ("wet", "dry"), ("hard", "soft"), ("light", "dark"), ("loud", "quiet"),
                ("clean", "dirty"), ("sweet", "sour"), ("sharp", "blunt"), ("rough", "smooth"), ("tight", "loose"),
                ("strong", "weak"), ("fast", "slow"), ("safe", "dangerous"), ("alive", "dead"),
                ("asleep", "awake"), ("wild", "tame"), ("day", "night")),
    "acts": (("buy", "sell"), ("give", "take"), ("accept", "refuse"), ("remember", "forget"), ("open", "closed"),
             ("absent", "present"), ("private", "public"), ("question", "answer")),
}  # fmt: skip


def _antonyms(split: Split) -> list[Group]:
    """One group per word of a pair (both directions): its antonym and a word of another cluster (exactly one
    true). Pairs, not words, are split, so a split never shows a pair's other direction from the other split."""
    cluster_of = {f"{a}/{b}": c for c, pairs in ANTONYMS.items() for a, b in pairs}
    groups: list[Group] = []
    for key in _half(list(cluster_of), "antonyms", split):
        a, b = key.split("/")
        others = [w for c, pairs in ANTONYMS.items() if c != cluster_of[key] for pair in pairs for w in pair]
        for word, opposite in ((a, b), (b, a)):
            wrong = _pick(others, f"antonyms:{word}")
            groups.append(
                (
                    Claim(f"The opposite of {word} is {opposite}.", f"Is {opposite} the opposite of {word}?", 1),
                    Claim(f"The opposite of {word} is {wrong}.", f"Is {wrong} the opposite of {word}?", 0),
                )
            )
    return groups


# Countries whose capital is not disputed, split or recently moved; names as they read after "the capital of".
CAPITALS: tuple[tuple[str, str], ...] = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("the United Kingdom", "London"), ("Ireland", "Dublin"), ("Belgium", "Brussels"), ("Austria", "Vienna"),
    ("Switzerland", "Bern"), ("Poland", "Warsaw"), ("the Czech Republic", "Prague"), ("Hungary", "Budapest"),
    ("Greece", "Athens"), ("Sweden", "Stockholm"), ("Norway", "Oslo"), ("Denmark", "Copenhagen"),
    ("Finland", "Helsinki"), ("Iceland", "Reykjavik"), ("Russia", "Moscow"), ("Ukraine", "Kyiv"),
    ("Romania", "Bucharest"), ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"), ("Croatia", "Zagreb"),
    ("Slovakia", "Bratislava"), ("Slovenia", "Ljubljana"), ("Estonia", "Tallinn"), ("Latvia", "Riga"),
    ("Lithuania", "Vilnius"), ("Turkey", "Ankara"), ("Egypt", "Cairo"), ("Morocco", "Rabat"),
    ("Algeria", "Algiers"), ("Tunisia", "Tunis"), ("Kenya", "Nairobi"), ("Ethiopia", "Addis Ababa"),
    ("Nigeria", "Abuja"), ("Ghana", "Accra"), ("Senegal", "Dakar"), ("Uganda", "Kampala"), ("Zimbabwe", "Harare"),
    ("Angola", "Luanda"), ("China", "Beijing"), ("Japan", "Tokyo"), ("South Korea", "Seoul"),
    ("North Korea", "Pyongyang"), ("India", "New Delhi"), ("Pakistan", "Islamabad"), ("Bangladesh", "Dhaka"),
    ("Nepal", "Kathmandu"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("the Philippines", "Manila"),
    ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Saudi Arabia", "Riyadh"), ("Syria", "Damascus"),
    ("Jordan", "Amman"), ("Lebanon", "Beirut"), ("Afghanistan", "Kabul"), ("Mongolia", "Ulaanbaatar"),
    ("Canada", "Ottawa"), ("the United States", "Washington"), ("Mexico", "Mexico City"), ("Cuba", "Havana"),
    ("Jamaica", "Kingston"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Chile", "Santiago"),
    ("Peru", "Lima"), ("Colombia", "Bogota"), ("Venezuela", "Caracas"), ("Ecuador", "Quito"),
    ("Uruguay", "Montevideo"), ("Paraguay", "Asuncion"), ("Australia", "Canberra"), ("New Zealand", "Wellington"),
    ("Qatar", "Doha"), ("Cambodia", "Phnom Penh"), ("Laos", "Vientiane"),
)  # fmt: skip


def _capitals(split: Split) -> list[Group]:
    """One group per country: its capital and another country's capital (exactly one true)."""
    capital = dict(CAPITALS)
    groups: list[Group] = []
    for country in _half([c for c, _ in CAPITALS], "capitals", split):
        wrong = _pick([c for k, c in CAPITALS if k != country], f"capitals:{country}")
        groups.append(
            tuple(
                Claim(f"The capital of {country} is {city}.", f"Is {city} the capital of {country}?", gold)
                for city, gold in ((capital[country], 1), (wrong, 0))
            )
        )
    return groups


SENTIMENT_SUBJECTS: tuple[str, ...] = (
    "the soup", "the movie", "the hotel room", "the concert", "the book", "the service", "the weather", "the party",
    "the trip", "the coffee", "the new phone", "the game", "the lecture", "the pizza", "the show", "the flight",
    "the view", "the meal", "the song", "the staff", "the class", "the park", "the holiday", "the restaurant",
    "the play", "the museum", "the bread", "the cake", "the bed", "the car ride", "the wedding", "the festival",
    "the beach", "the hike", "the interview", "the tour", "the app", "the garden", "the train journey", "the match",
)  # fmt: skip
SENTIMENT_WORDS: tuple[tuple[str, str], ...] = (
    ("wonderful", "terrible"), ("excellent", "awful"), ("great", "horrible"), ("lovely", "dreadful"),
    ("fantastic", "disappointing"), ("delightful", "miserable"), ("pleasant", "unpleasant"), ("amazing", "boring"),
)  # fmt: skip
"""(positive, negative) words that fit any subject above."""


def _sentiment(split: Split) -> list[Group]:
    """One group per subject and word pair: the praising and the complaining sentence (exactly one positive)."""
    groups: list[Group] = []
    for subject in _half(SENTIMENT_SUBJECTS, "sentiment", split):
        for good, bad in SENTIMENT_WORDS:
            members = []
            for word, gold in ((good, 1), (bad, 0)):
                quoted = f'"{_cap(subject)} was {word}."'
                members.append(
                    Claim(
                        f"The sentence {quoted} expresses a positive opinion.",
                        f"Does the sentence {quoted} express a positive opinion?",
                        gold,
                    )
                )
            groups.append(tuple(members))
    return groups


# ---------------------------------------------------------------------------------------------- registry

PROBES: dict[str, Probe] = {
    "categories": Probe("categories", "the category claim is true", ConsistencyRule.EXACTLY_ONE_TRUE, 2, _categories),
    "comparisons": Probe("comparisons", "the comparison is true", ConsistencyRule.EXACTLY_ONE_TRUE, 2, _comparisons),
    "arithmetic": Probe("arithmetic", "the sum is right", ConsistencyRule.SAME_ANSWER_SAME_LABEL, 4, _arithmetic),
    "antonyms": Probe("antonyms", "the two words are opposites", ConsistencyRule.EXACTLY_ONE_TRUE, 2, _antonyms),
    "capitals": Probe("capitals", "the city is the country's capital", ConsistencyRule.EXACTLY_ONE_TRUE, 2, _capitals),
    "sentiment": Probe(
        "sentiment", "the sentence expresses a positive opinion", ConsistencyRule.EXACTLY_ONE_TRUE, 2, _sentiment
    ),
}
"""The probe tasks by name."""


def get_probe(name: str) -> Probe:
    """The probe called ``name``; an unknown name is one line listing the known ones."""
    if name not in PROBES:
        raise DataError(f"unknown probe {name!r}; use one of {', '.join(PROBES)}")
    return PROBES[name]


def pool(name: str, split: Split = "main") -> list[Group]:
    """Every group of a probe's split, in a fixed order (independent of any seed)."""
    return get_probe(name).build(split)


def _true_slots(counts: np.ndarray, n_true: int, rng: np.random.Generator) -> np.ndarray:
    """Positions for a group's true members: those that held a true member least often so far, ties at random."""
    return np.lexsort((rng.random(len(counts)), counts))[:n_true]


def probe_items(name: str, n: int, seed: int = 0, split: Split = "main") -> pd.DataFrame:
    """``n`` items of probe ``name`` drawn by ``seed`` from ``split``: whole groups in random order, true members
    spread evenly over the positions inside groups; ``PROBE_COLUMNS``, item_id 0..n-1, ``source_row`` = position in
    the split's pool (group index × group size + member), ``consistency_id`` = group number in the sample."""
    probe = get_probe(name)
    size = probe.group_size
    if isinstance(n, bool) or not isinstance(n, int) or n < size or n % size:
        fix = max(size, n // size * size) if isinstance(n, int) and not isinstance(n, bool) else size
        raise DataError(f"probe '{name}': n={n!r} is not a positive multiple of its group size {size}; use n={fix}")
    groups = pool(name, split)
    if n > len(groups) * size:
        raise DataError(
            f"probe '{name}' has {len(groups) * size} items in split {split!r}; use n <= {len(groups) * size}"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(groups), size=n // size, replace=False)
    counts = np.zeros(size, dtype=np.int64)
    rows: list[tuple[Claim, int, int]] = []
    for gid, g in enumerate(chosen):
        members = groups[int(g)]
        true_idx = [i for i, c in enumerate(members) if c.gold == 1]
        false_idx = [i for i, c in enumerate(members) if c.gold == 0]
        slots = _true_slots(counts, len(true_idx), rng)
        counts[slots] += 1
        order = np.empty(size, dtype=np.int64)
        order[slots] = rng.permutation(true_idx)
        order[np.setdiff1d(np.arange(size), slots)] = rng.permutation(false_idx)
        rows.extend((members[int(i)], gid, int(g) * size + int(i)) for i in order)
    claims = [c for c, _, _ in rows]
    items = pd.DataFrame(
        {
            "item_id": np.arange(n, dtype=np.int64),
            "text": pd.Series([c.text for c in claims], dtype="str"),
            "gold": pd.array([c.gold for c in claims], dtype="Int8"),
            "consistency_id": pd.array([gid for _, gid, _ in rows], dtype="Int64"),
            "source_row": np.array([src for _, _, src in rows], dtype=np.int64),
            "answer_key": pd.Series([c.answer_key for c in claims], dtype="str"),
            "nuisance": pd.array([None] * n, dtype="Int8"),
            "question": pd.Series([c.question for c in claims], dtype="str"),
        }
    )
    validate_items(items)
    items.attrs["dataset"] = f"probe_{name}"
    return items


# ---------------------------------------------------------------------------------------------- shipped files

PROBE_DIR = "data/probes"
FILE_COLUMNS = ["text", "question", "gold", "consistency_id", "answer_key"]
"""Columns of a shipped probe file (the ``probe_<name>`` builtins read it)."""


def probe_path(name: str, split: Split = "main") -> str:
    """Where a probe's split is shipped, relative to the repository root."""
    return f"{PROBE_DIR}/{name}_{split}.csv"


def probe_table(name: str, split: Split = "main") -> pd.DataFrame:
    """A whole split as the shipped file holds it: every group once, in the order seed 0 draws them (position
    inside groups balanced as in :func:`probe_items`), so the pipeline's own seeded subsample starts from a pool
    whose row order says nothing about gold."""
    size = get_probe(name).group_size
    items = probe_items(name, len(pool(name, split)) * size, seed=0, split=split)
    return items[FILE_COLUMNS]


def write_probe_files(root: str | Path, check: bool = False) -> list[str]:
    """Write every probe's splits under ``root``/data/probes (or, with ``check``, list the files that differ from
    what the generators make now: the shipped files must be reproducible from this module)."""
    stale = []
    for name in PROBES:
        for split in SPLITS:
            path = Path(root) / probe_path(name, split)  # type: ignore[arg-type]
            text = probe_table(name, split).to_csv(index=False, lineterminator="\n")  # type: ignore[arg-type]
            if check:
                if not path.exists() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return stale


if __name__ == "__main__":  # uv run python -m elicit.datasets.probes [--check]
    import sys

    repo = Path(__file__).resolve().parents[3]
    if "--check" in sys.argv[1:]:
        bad = write_probe_files(repo, check=True)
        sys.exit(f"stale probe files (re-write with `python -m elicit.datasets.probes`): {bad}" if bad else 0)
    write_probe_files(repo)
