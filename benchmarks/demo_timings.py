"""Wall time of `tfx-bert demo` and of each component on the tiny configuration, and the Beam
choice behind it: the pretraining pipeline's Beam components with the in-process DirectRunner
(the demo's setting) vs 2 worker processes, measured in the same run.

    .venv/bin/python benchmarks/demo_timings.py
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "tfx_bert.cli"]
BEAM_COMPONENTS = ("TextExampleGen", "StatisticsGen", "WordPieceVocabGen", "PretrainingDataGen")


def _run(args):
    start = time.perf_counter()
    out = subprocess.run(CLI + args, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    return time.perf_counter() - start, out


def _component_seconds(output: str) -> dict:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^  (\S+)\s+(?:COMPLETE|CACHED)\s+([\d.]+)s", output, re.M)}


def main():
    from benchmarks import common

    common.check_machine()
    work = tempfile.mkdtemp(prefix="bench-demo-")
    total, out = _run(["demo", "--work-dir", os.path.join(work, "a")])
    print(f"tfx-bert demo (set-up excluded): {total:.0f}s wall")
    for line in out.splitlines():
        if line.startswith(("Pipeline ", "  ")) and ("COMPLETE" in line or "CACHED" in line or line.startswith("Pipeline ")):
            print(re.sub(r"  outputs.*|(\d+s) .*", r"\1", line))
    in_memory = _component_seconds(out)
    _, out2 = _run(["pretrain", "--demo", "--work-dir", os.path.join(work, "b"), "--set",
                    "beam_pipeline_args=--direct_running_mode=multi_processing,--direct_num_workers=2",
                    "--set", "pretrain.train_steps=10"])
    multi = _component_seconds(out2)
    a = sum(in_memory.get(c, 0) for c in BEAM_COMPONENTS)
    b = sum(multi.get(c, 0) for c in BEAM_COMPONENTS)
    print(f"Beam components of the pretraining pipeline: in-process {a:.1f}s vs 2 worker processes {b:.1f}s "
          f"(x{b / a:.1f})")


if __name__ == "__main__":
    main()
