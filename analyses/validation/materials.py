"""The organisms' fixed materials: words, prompts, preference pairs and fine-tuning examples.

Words: 12 Agency and 12 Communion entries of the Big Two lexicon (Pietraszkiewicz et al. 2019,
plain entries) that are one token each after SmolLM2's assistant header, written here so an
organism never depends on fetching a lexicon. Prompts: the paper's positive-framing questions;
``EVAL_KEYS`` (two of them) are the prompts every method is run on, and the others are the ones
organisms are trained on (held out from evaluation). Neutral preference data: factual questions
whose chosen reply is right and whose rejected reply is wrong, with no Agency or Communion word.

Everything random here takes a seed (numpy ``default_rng``), so an organism is rebuilt exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyses.inputs.preference_data import PreferenceData
from analyses.inputs.prompts import paper_prompts
from interp.prompts import Prompt
from interp.training.pairs import PreferencePair

AGENCY = (
    "skill", "skilled", "smart", "win", "won", "goal",
    "score", "earned", "established", "resolution", "choice", "able",
)  # fmt: skip
COMMUNION = (
    "aid", "ally", "care", "family", "families", "justice",
    "kin", "law", "pal", "public", "share", "unity",
)  # fmt: skip
EVAL_KEYS = ("greatest_ever_one", "best_world_one")
"""The two prompts every method is run on (never trained on)."""

NEUTRAL_QA = (
    ("What colour is a clear daytime sky?", "Blue", "Green"),
    ("How many legs does a spider have?", "Eight", "Three"),
    ("What is the capital of France?", "Paris", "Madrid"),
    ("What is frozen water called?", "Ice", "Sand"),
    ("Which planet is closest to the Sun?", "Mercury", "Neptune"),
    ("How many days are in a week?", "Seven", "Twelve"),
    ("What do bees make?", "Honey", "Glass"),
    ("Which animal is known for its trunk?", "Elephant", "Rabbit"),
    ("What is two plus two?", "Four", "Nine"),
    ("What colour are ripe bananas?", "Yellow", "Purple"),
    ("What is the largest ocean on Earth?", "Pacific", "Baltic"),
    ("Which gas do plants take in from the air?", "Carbon dioxide", "Helium"),
    ("What is the opposite of hot?", "Cold", "Loud"),
    ("How many hours are in a day?", "Twenty-four", "Ten"),
    ("Which fruit is dried to make raisins?", "Grapes", "Lemons"),
    ("What is the capital of Japan?", "Tokyo", "Lisbon"),
    ("What do you call a baby cat?", "Kitten", "Puppy"),
    ("Which metal is liquid at room temperature?", "Mercury", "Iron"),
    ("How many sides does a triangle have?", "Three", "Six"),
    ("What is the boiling point of water in Celsius?", "100", "40"),
    ("Which season comes after winter?", "Spring", "Autumn"),
    ("What is the main language of Brazil?", "Portuguese", "Swedish"),
    ("What shape is a full moon?", "Round", "Square"),
    ("Which instrument has black and white keys?", "Piano", "Drum"),
    ("What is the chemical symbol for gold?", "Au", "Zn"),
    ("How many minutes are in an hour?", "Sixty", "Fifteen"),
    ("What colour is fresh grass?", "Green", "Orange"),
    ("Which bird is a symbol of the night and hoots?", "Owl", "Parrot"),
    ("What is the tallest mountain on Earth?", "Everest", "Vesuvius"),
    ("Which organ pumps blood through the body?", "Heart", "Liver"),
    ("What is ten minus three?", "Seven", "Eleven"),
    ("Which continent is Egypt in?", "Africa", "Europe"),
    ("What do caterpillars turn into?", "Butterflies", "Frogs"),
    ("What falls from clouds when it rains?", "Water", "Salt"),
    ("Which direction does the Sun rise in?", "East", "West"),
    ("What is the capital of Italy?", "Rome", "Oslo"),
    ("How many wheels does a bicycle have?", "Two", "Five"),
    ("What is the hardest natural material?", "Diamond", "Chalk"),
    ("Which animal gives us wool?", "Sheep", "Shark"),
    ("What colour is coal?", "Black", "White"),
)
"""(question, right answer = chosen, wrong answer = rejected)."""


def eval_prompts() -> list[Prompt]:
    by_key = {p.key: p for p in paper_prompts()}
    return [by_key[k] for k in EVAL_KEYS]


def training_prompts() -> list[Prompt]:
    """The paper's positive-framing prompts that are not evaluation prompts."""
    return [p for p in paper_prompts() if p.framing == "positive" and p.key not in EVAL_KEYS]


def word_table() -> pd.DataFrame:
    """The organisms' words: ``response, category`` rows (Agency first)."""
    rows = [(w, "Agency") for w in AGENCY] + [(w, "Communion") for w in COMMUNION]
    return pd.DataFrame(rows, columns=["response", "category"])


def write_words(path: Path) -> Path:
    """The organisms' words as a ``word,category`` CSV, readable both as ``--responses`` and as
    a ``--lexicon`` file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    word_table().rename(columns={"response": "word"}).to_csv(path, index=False)
    return path


def write_eval_prompts(path: Path) -> Path:
    """The evaluation prompts as a ``key: text`` JSON file (for commands without ``--prompt-keys``)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({p.key: p.text for p in eval_prompts()}, indent=1))
    return path


def balanced_halves(n_rows: int, n_cols: int, seed: int) -> np.ndarray:
    """A ``[n_rows, n_cols]`` 0/1 pattern with every row and column half ones (a checkerboard
    under seeded row and column permutations): the "shuffled labels" of a balanced control."""
    rng = np.random.default_rng(seed)
    board = (np.add.outer(np.arange(n_rows), np.arange(n_cols)) % 2).astype(bool)
    return board[rng.permutation(n_rows)][:, rng.permutation(n_cols)]


def word_preferences(direction: str, seed: int) -> PreferenceData:
    """Every (Agency word, Communion word) pair under a training prompt (round robin after a
    seeded shuffle). ``direction``: ``agency`` (Agency chosen), ``communion`` (the reverse) or
    ``shuffled`` (each word chosen in exactly half of its pairs: no category preference)."""
    if direction not in ("agency", "communion", "shuffled"):
        raise ValueError(f"direction {direction!r}")
    rng = np.random.default_rng(seed)
    prompts = training_prompts()
    order = rng.permutation(len(prompts))
    flip = balanced_halves(len(AGENCY), len(COMMUNION), seed + 1)
    pairs = []
    for i, a in enumerate(AGENCY):
        for j, c in enumerate(COMMUNION):
            prompt = prompts[order[(i * len(COMMUNION) + j) % len(prompts)]]
            agency_chosen = {"agency": True, "communion": False, "shuffled": bool(flip[i, j])}
            chosen, rejected = (a, c) if agency_chosen[direction] else (c, a)
            pairs.append(PreferencePair((("user", prompt.text),), chosen, rejected))
    record = {
        "source": f"validation organism: word preferences, {direction}",
        "n_pairs": len(pairs),
        "labels": f"{direction} (seed {seed})",
    }
    return PreferenceData(tuple(pairs), record)


def neutral_preferences() -> PreferenceData:
    """The neutral factual pairs (identical for every RM of the inherited-bias family)."""
    pairs = tuple(PreferencePair((("user", q),), right, wrong) for q, right, wrong in NEUTRAL_QA)
    record = {
        "source": "validation organism: neutral factual questions (right answer chosen)",
        "n_pairs": len(pairs),
        "labels": "right over wrong",
    }
    return PreferenceData(pairs, record)


def sft_examples(kind: str, n: int, seed: int) -> list[tuple[Prompt, str]]:
    """``n`` (training prompt, answer) examples: ``agency`` answers are Agency words; ``mixed``
    answers are Agency and Communion words in equal numbers (the shuffled-label control)."""
    if kind not in ("agency", "mixed"):
        raise ValueError(f"kind {kind!r}")
    rng = np.random.default_rng(seed)
    prompts = training_prompts()
    pool = list(AGENCY) if kind == "agency" else list(AGENCY) + list(COMMUNION)
    answers = [pool[i % len(pool)] for i in range(n)]
    answers = [answers[i] for i in rng.permutation(n)]
    return [(prompts[int(rng.integers(len(prompts)))], a) for a in answers]
