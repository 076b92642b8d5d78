"""Ingestion throughput (1 vs 2 DirectRunner workers) and vocabulary learning scaling
(10 MB -> 100 MB: wall time and peak RSS). Each measurement runs in a fresh subprocess so peak
RSS belongs to that step alone.

    .venv/bin/python benchmarks/beam_components.py [--sizes 10 100]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ONE = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
TWO = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _step(kind: str, corpus_glob: str, out_dir: str, beam_args: list) -> dict:
    """Runs inside a subprocess: one executor, then prints wall time and peak RSS as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfx.types import standard_artifacts

    from benchmarks import common
    from tfx_bert_app.components.artifacts import Vocabulary
    from tfx_bert_app.components.text_example_gen import executor as gen_ex
    from tfx_bert_app.components.wordpiece_vocab import executor as vocab_ex
    from tests.conftest import new_artifact, run_executor

    examples = new_artifact(standard_artifacts.Examples, os.path.join(out_dir, "examples"))
    start = time.perf_counter()
    if kind == "ingest":
        props = {gen_ex.INPUT_PATTERN: corpus_glob, gen_ex.INPUT_FORMAT: "bert_raw", gen_ex.TEXT_FIELD: "text",
                 gen_ex.ID_FIELD: "", gen_ex.EVAL_PERCENT: 10, gen_ex.MAX_LINE_CHARS: 100000,
                 gen_ex.STRICT: 0, gen_ex.PER_LINE: 0}
        run_executor(gen_ex.Executor, {}, {"examples": [examples]}, props, os.path.join(out_dir, "t"), beam_args)
    else:
        examples.split_names = '["train", "eval"]'
        vocab = new_artifact(Vocabulary, os.path.join(out_dir, "vocab"))
        run_executor(vocab_ex.Executor, {"examples": [examples]}, {"vocabulary": [vocab]},
                     {vocab_ex.VOCAB_SIZE: 30522, vocab_ex.LOWER_CASE: 1, vocab_ex.NUM_UNUSED: 0,
                      vocab_ex.VOCAB_PATH: "", vocab_ex.MAX_BYTES_PER_WORD: 100, vocab_ex.TEXT_FEATURE: "text"},
                     os.path.join(out_dir, "t2"), beam_args)
    result = {"seconds": time.perf_counter() - start, "peak_rss_mb": common.peak_rss_mb()}
    if kind == "vocab":
        report = json.load(open(os.path.join(vocab.uri, "vocab_report.json")))
        result.update(count_seconds=report["count_seconds"], learn_seconds=report["learn_seconds"])
    return result


def _run_step(kind, corpus_glob, out_dir, workers):
    code = (f"import json,sys; sys.path.insert(0, {ROOT!r}); from benchmarks.beam_components import _step; "
            f"print('RESULT', json.dumps(_step({kind!r}, {corpus_glob!r}, {out_dir!r}, {ONE if workers == 1 else TWO!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return json.loads(out.split("RESULT", 1)[1])


def main():
    from benchmarks import common

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=float, nargs="+", default=[10, 100])
    args = parser.parse_args()
    common.check_machine()
    tmp = tempfile.mkdtemp(prefix="bench-beam-")
    words = common.lexicon()
    print(f"{'MB':>6} {'ingest 1w MB/s':>15} {'ingest 2w MB/s':>15} {'vocab s':>8} {'count s':>8} "
          f"{'learn s':>8} {'count MB/s':>10} {'vocab peak RSS MB':>18}")
    rows = []
    for size in args.sizes:
        corpus_dir = os.path.join(tmp, f"c{size:g}")
        # Several files: a file is the unit of parallel ingestion.
        nbytes = sum(common.write_corpus(os.path.join(corpus_dir, f"part{i}.txt"), size / 8, seed=i, words=words)
                     for i in range(8))
        mb = nbytes / 1e6
        glob_ = os.path.join(corpus_dir, "*.txt")
        one = _run_step("ingest", glob_, os.path.join(tmp, f"o1_{size:g}"), 1)
        two = _run_step("ingest", glob_, os.path.join(tmp, f"o2_{size:g}"), 2)
        vocab = _run_step("vocab", glob_, os.path.join(tmp, f"o1_{size:g}"), 1)
        rows.append((mb, one, two, vocab))
        print(f"{mb:6.1f} {mb / one['seconds']:15.2f} {mb / two['seconds']:15.2f} {vocab['seconds']:8.1f} "
              f"{vocab['count_seconds']:8.1f} {vocab['learn_seconds']:8.1f} {mb / vocab['count_seconds']:10.2f} "
              f"{vocab['peak_rss_mb']:18.0f}", flush=True)
    if len(rows) >= 2:
        (mb0, _, _, v0), (mb1, _, _, v1) = rows[0], rows[-1]
        print(f"corpus x{mb1 / mb0:.1f}: vocab time x{v1['seconds'] / v0['seconds']:.2f} "
              f"(counting x{v1['count_seconds'] / v0['count_seconds']:.2f}), "
              f"peak RSS x{v1['peak_rss_mb'] / v0['peak_rss_mb']:.2f}")
        print(f"2 workers vs 1 (largest): x{rows[-1][1]['seconds'] / rows[-1][2]['seconds']:.2f}")


if __name__ == "__main__":
    main()
