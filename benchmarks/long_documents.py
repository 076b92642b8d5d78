"""Long documents: truncation against windows, in the same run.

The demo's encoder (pretrained here, or ``--encoder``) is fine-tuned on long reviews whose
deciding sentence lies past the first 64-piece window (``demo_data.write_long_sentiment_dataset``)
three ways: cut at max_seq_length (finetune.max_windows=1, BERT's default), and read in up to 4
windows with mean and with max pooling. Reported: each run's accuracy on the eval split (TFMA's,
the gate's) and the texts max_windows cut; then the serving cost per window count: the windowed
export's median latency for a batch of texts of 1, 2, 3 and 4 windows, against the truncating
export on the same texts.

    .venv/bin/python benchmarks/long_documents.py [--encoder DIR] [--steps 300]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "tfx_bert.cli"]
MODES = {"truncated": ("finetune.max_windows=1",),
         "windows-mean": ("finetune.max_windows=4", "finetune.window_pooling=mean"),
         "windows-max": ("finetune.max_windows=4", "finetune.window_pooling=max")}


def _finetune(work: str, encoder: str, data: str, steps: int, flags) -> dict:
    import tensorflow_model_analysis as tfma

    sets = [f"finetune.encoder_uri={encoder}", f"finetune.data_dir={data}", f"finetune.train_steps={steps}",
            "finetune.accuracy_threshold=0", *flags]
    subprocess.run(CLI + ["finetune", "--demo", "--work-dir", work] + [x for s in sets for x in ("--set", s)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    pipeline = os.path.join(work, "pipelines", "tfx-bert-sentiment")
    [evaluation] = glob.glob(os.path.join(pipeline, "Evaluator", "evaluation", "*"))
    accuracy = [kv.value.double_value.value for r in tfma.load_metrics(evaluation) for kv in r.metric_keys_and_values
                if kv.key.name == "sparse_categorical_accuracy"][0]
    [run] = glob.glob(os.path.join(pipeline, "Trainer", "model_run", "*", "train_metrics.json"))
    [model] = glob.glob(os.path.join(pipeline, "Trainer", "model", "*", "Format-Serving"))
    return {"accuracy": accuracy, "windows_cut": json.load(open(run)).get("windows_cut"), "model": model}


def _latency(model_dir: str, texts: list[str], repeats: int) -> float:
    """Median seconds of one serving_default call on ``texts``."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the exported graph's tokenizer ops)

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    batch = tf.constant(texts)
    serve(text=batch)  # traced and warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        serve(text=batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    from benchmarks import common
    from tfx_bert import demo_data

    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", default="", help="a pretrained encoder dir (default: pretrain the demo's)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    common.check_machine()
    work = tempfile.mkdtemp(prefix="bench-long-")
    encoder = args.encoder
    if not encoder:
        subprocess.run(CLI + ["pretrain", "--demo", "--work-dir", os.path.join(work, "pretrain")], cwd=ROOT,
                       check=True, capture_output=True)
        [encoder] = glob.glob(os.path.join(work, "pretrain", "pipelines", "tfx-bert-pretrain", "Trainer", "model", "*",
                                           "Format-Serving"))
    data = os.path.join(work, "long")
    demo_data.write_long_sentiment_dataset(data)
    results = {}
    for mode, flags in MODES.items():
        results[mode] = _finetune(os.path.join(work, mode), encoder, data, args.steps, flags)
        print(f"{mode:13} eval accuracy {results[mode]['accuracy']:.3f}; cut: {results[mode]['windows_cut']}", flush=True)

    # Serving: texts of 1 to 4 windows of 64 pieces (stride 31), 8 a batch, the same for both exports.
    sentence = "the warm bread bakes the fresh soup ."  # 8 pieces
    print("windows  texts' pieces  windowed (ms)  truncated (ms)  ratio")
    for windows in (1, 2, 3, 4):
        pieces = 62 + 31 * (windows - 1)
        texts = [" ".join([sentence] * (pieces // 8))] * 8
        windowed = _latency(results["windows-mean"]["model"], texts, args.repeats)
        truncated = _latency(results["truncated"]["model"], texts, args.repeats)
        print(f"{windows:7}  {pieces // 8 * 8:13}  {windowed * 1e3:13.1f}  {truncated * 1e3:14.1f}  "
              f"{windowed / truncated:5.2f}", flush=True)
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
