"""Shared pieces of the benchmarks: a generated corpus of a chosen size, timing, peak RSS."""
from __future__ import annotations

import os
import random
import resource
import statistics
import time

SYLLABLES = ("ka lo mi ne su ra to vi el an or is ut qu ber sch ing tion ment ly pre con dis "
             "stra tor ble ous ive al er re de un in ex pro").split()


def lexicon(size: int = 40_000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
    return sorted(words)


def write_corpus(path: str, megabytes: float, seed: int = 0, words: list[str] | None = None) -> int:
    """BERT raw format with Zipf-distributed pseudo-words; returns bytes written."""
    rng = random.Random(seed)
    words = words or lexicon()
    cum_weights, total = [], 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 1)
        cum_weights.append(total)
    target = int(megabytes * 1e6)
    written = 0
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            lines = []
            for _ in range(rng.randint(3, 12)):
                sentence = rng.choices(words, cum_weights=cum_weights, k=rng.randint(6, 25))
                sentence[0] = sentence[0].capitalize()
                lines.append(" ".join(sentence) + rng.choice((".", ".", "!", "?")))
            block = "\n".join(lines) + "\n\n"
            f.write(block)
            written += len(block.encode("utf-8"))
    return written


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def median_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
