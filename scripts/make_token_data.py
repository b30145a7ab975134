"""Generate the bundled token dataset ``data/tokens.txt`` (deterministic: fixed numpy seed).

A tiny made-up language over a vocabulary of about 50 words, one sequence per line,
tokens separated by single spaces, lengths 2..30. Five kinds of lines, so a
sequence autoencoder has structure to learn (and its latent vectors something to
separate):

* sentences: ``the small cat sees a red bird .``, sometimes with a place
  (``... near the old tree .``), sometimes two joined by ``and``;
* sums and differences of digits: ``three plus four equals seven .``;
* counting runs: ``count up from two to six : two three four five six``;
* lists: ``cat and dog and bird and fox .``;
* short replies: ``yes .``, ``no thanks .`` (the length-2 edge case).

The id of a sequence is its line number (format ``tokens_text``).
``configs/tokens.yaml`` trains on it. Run from the repository root:
``python scripts/make_token_data.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SEED = 20240612
NUM_LINES = 800
MIN_LEN, MAX_LEN = 2, 30

DETERMINERS = ("the", "a")
ADJECTIVES = ("small", "big", "red", "quick", "lazy", "happy", "old")
NOUNS = ("cat", "dog", "bird", "fox", "child", "robot", "farmer", "tree")
VERBS = ("sees", "chases", "likes", "finds", "follows", "greets")
PLACES = ("near", "under", "behind", "with")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
REPLIES = (("yes", "."), ("no", "."), ("no", "thanks", "."), ("thank", "you", "."), ("hello", "there", "."))
KINDS = ("sentence", "arithmetic", "counting", "list", "reply")
KIND_WEIGHTS = (0.45, 0.2, 0.15, 0.12, 0.08)


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _noun_phrase(rng: np.random.Generator) -> list[str]:
    words = [_pick(rng, DETERMINERS)]
    if rng.random() < 0.6:
        words.append(_pick(rng, ADJECTIVES))
        if words == ["a", "old"]:
            words[0] = "an"
    words.append(_pick(rng, NOUNS))
    return words


def _clause(rng: np.random.Generator) -> list[str]:
    words = _noun_phrase(rng) + [_pick(rng, VERBS)] + _noun_phrase(rng)
    if rng.random() < 0.4:
        words += [_pick(rng, PLACES)] + _noun_phrase(rng)
    return words


def _sentence(rng: np.random.Generator) -> list[str]:
    words = _clause(rng)
    if rng.random() < 0.3:
        words += ["and"] + _clause(rng)
    return words + ["."]


def _arithmetic(rng: np.random.Generator) -> list[str]:
    a, b = (int(v) for v in rng.integers(0, 10, size=2))
    if rng.random() < 0.5 and a + b <= 9:
        return [DIGITS[a], "plus", DIGITS[b], "equals", DIGITS[a + b], "."]
    a, b = max(a, b), min(a, b)
    return [DIGITS[a], "minus", DIGITS[b], "equals", DIGITS[a - b], "."]


def _counting(rng: np.random.Generator) -> list[str]:
    a, b = sorted(int(v) for v in rng.choice(10, size=2, replace=False))
    run = [DIGITS[k] for k in range(a, b + 1)]
    if rng.random() < 0.5:
        return ["count", "up", "from", DIGITS[a], "to", DIGITS[b], ":"] + run
    return ["count", "down", "from", DIGITS[b], "to", DIGITS[a], ":"] + run[::-1]


def _list(rng: np.random.Generator) -> list[str]:
    n = int(rng.integers(2, 16))
    words = [_pick(rng, NOUNS)]
    for _ in range(n - 1):
        words += ["and", _pick(rng, NOUNS)]
    return words + ["."]


def generate(seed: int = SEED, n: int = NUM_LINES) -> list[list[str]]:
    """``n`` token sequences, each ``MIN_LEN`` to ``MAX_LEN`` tokens long."""
    rng = np.random.default_rng(seed)
    makers = {"sentence": _sentence, "arithmetic": _arithmetic, "counting": _counting, "list": _list}
    lines = []
    for _ in range(n):
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS))]
        words = list(REPLIES[int(rng.integers(len(REPLIES)))]) if kind == "reply" else makers[kind](rng)
        lines.append(words[:MAX_LEN])
    return lines


def render(lines: list[list[str]]) -> str:
    return "".join(" ".join(words) + "\n" for words in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data" / "tokens.txt")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    lines = generate(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(lines), encoding="utf-8", newline="\n")
    lengths = [len(words) for words in lines]
    vocab = {w for words in lines for w in words}
    print(
        f"wrote {len(lines)} sequences, {sum(lengths)} tokens, lengths {min(lengths)}..{max(lengths)}, "
        f"{len(vocab)} distinct tokens to {args.out}"
    )


if __name__ == "__main__":
    main()
