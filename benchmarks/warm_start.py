"""Warm start vs cold start on a new span, in the same run: the continuous-training demo's span 1
is trained and blessed (from the demo's pretrained encoder), then span 3 is fine-tuned twice from
that state: continued from span 1's blessed model (finetune.warm_start=auto) and from the encoder
(off), each validated every 10 steps on the same held-out rows. Reported: each curve, the cold
run's best validation accuracy, and the first step at which each run reaches it.

    .venv/bin/python benchmarks/warm_start.py [--steps 200]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "tfx_bert.cli"]


def _finetune(work: str, steps: int, *flags) -> None:
    from tfx_bert import demo_data

    loop = os.path.join(work, "data", "loop")
    subprocess.run(CLI + ["finetune", "--demo", "--work-dir", work, "--set", f"finetune.data_dir={loop}",
                          "--set", f"finetune.train_pattern={demo_data.LOOP_TRAIN_PATTERN}",
                          "--set", f"finetune.eval_pattern={demo_data.LOOP_EVAL_PATTERN}",
                          "--set", f"finetune.train_steps={steps}", "--set", "finetune.eval_every=10",
                          "--set", "finetune.max_regression=1", *flags],
                   cwd=ROOT, check=True, capture_output=True, text=True)


def _curve(work: str) -> list[tuple[int, float]]:
    import glob

    runs = sorted(glob.glob(os.path.join(work, "pipelines", "tfx-bert-sentiment", "Trainer", "model_run", "*")),
                  key=lambda p: int(os.path.basename(p)))
    with open(os.path.join(runs[-1], "train_metrics.json")) as f:
        return [(p["step"], p["val_accuracy"]) for p in json.load(f)["validation_curve"]]


def main():
    from benchmarks import common
    from tfx_bert import demo_data

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    common.check_machine()
    work = tempfile.mkdtemp(prefix="bench-warm-")
    base = os.path.join(work, "base")
    subprocess.run(CLI + ["pretrain", "--demo", "--work-dir", base], cwd=ROOT, check=True, capture_output=True)
    demo_data.write_sentiment_span(os.path.join(base, "data", "loop"), 1)
    _finetune(base, args.steps)
    curves = {}
    for mode in ("auto", "off"):
        run = os.path.join(work, mode)
        shutil.copytree(base, run, symlinks=True)
        demo_data.write_sentiment_span(os.path.join(run, "data", "loop"), 3)
        # The copy's MLMD records paths under base/: the encoder and blessed model are read there.
        _finetune(run, args.steps, "--set", f"finetune.warm_start={mode}")
        curves[mode] = _curve(run)
    target = max(accuracy for _, accuracy in curves["off"])
    print(f"span 3, {args.steps} steps, validated every 10 (the same held-out rows):")
    for mode, name in (("auto", "warm (span 1's blessed model)"), ("off", "cold (the encoder)")):
        reached = next((step for step, accuracy in curves[mode] if accuracy >= target), None)
        print(f"  {name:30} reaches the cold run's best ({target:.4f}) at step {reached}; curve: "
              + ", ".join(f"{s}: {a:.3f}" for s, a in curves[mode]))


if __name__ == "__main__":
    main()
