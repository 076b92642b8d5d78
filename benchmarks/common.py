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


# A benchmark on a busy machine prints noise: below this share of the machine's usual matmul
# peak, ratios are refused (BENCH_ALLOW_BUSY=1 reports them anyway, marked).
BUSY_SHARE = 0.7
PEAK_RECORD = os.path.join(os.path.expanduser("~"), ".cache", "tfx-bert", "matmul_peak.json")


def matmul_peak_gflops(n: int = 1024, repeats: int = 20) -> float:
    """This machine's float32 dense-matmul rate now (numpy's BLAS, all cores), in GFLOP/s: the
    best of ``repeats`` products, so a short hiccup does not count but a busy machine does."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _machine_key() -> str:
    model = "unknown cpu"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    return f"{model} x{os.cpu_count()}"


def check_machine(record: str = PEAK_RECORD) -> float:
    """Measures the matmul peak, prints it beside this machine's usual one (the best seen here,
    kept in ``record`` per CPU model and core count) and exits with the reason when it is below
    ``BUSY_SHARE`` of it: another job is using the cores and every ratio would be noise. Returns
    the peak in GFLOP/s."""
    import json
    import sys

    peak, key = matmul_peak_gflops(), _machine_key()
    seen = {}
    if os.path.exists(record):
        with open(record) as f:
            seen = json.load(f)
    usual = max(seen.get(key, 0.0), peak)
    os.makedirs(os.path.dirname(record), exist_ok=True)
    with open(record, "w") as f:
        json.dump({**seen, key: usual}, f, indent=1)
    print(f"machine: {key}; float32 matmul peak now {peak:.0f} GFLOP/s, usual {usual:.0f} "
          f"({peak / usual:.0%})", flush=True)
    if peak < BUSY_SHARE * usual:
        message = (f"this machine is busy: its matmul peak is {peak / usual:.0%} of its usual "
                   f"(under {BUSY_SHARE:.0%}), so ratios measured now would be noise")
        if os.environ.get("BENCH_ALLOW_BUSY") != "1":
            sys.exit(f"Refusing to benchmark: {message}. Stop the other work, or set BENCH_ALLOW_BUSY=1 "
                     "to print the numbers anyway (marked unreliable).")
        print(f"WARNING: {message}; BENCH_ALLOW_BUSY=1, so every number below is UNRELIABLE.", flush=True)
    return peak


def step_timer():
    """A Keras callback that records the wall time of each training step in ``.seconds`` (but the
    first of each ``fit``, which also opens the iterator), so a stall of the machine costs the
    steps it hit, not a whole measurement: benchmarks report the median step."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self._start = [], None

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch:
                self.seconds.append(time.perf_counter() - self._start)

    return StepTimer()
