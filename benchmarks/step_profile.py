"""Where one pretraining step's time goes: TensorFlow's profiler over a few training steps of the
pipeline's model (float32 and ``mixed_bfloat16``), its trace read back and summed by op type and
by kind (matmuls, softmax, reductions, elementwise work, dtype casts, optimizer updates, input)
and by model part (feed-forward, self-attention, dropout, the MLM head, ...).

Op time is the sum of the executed kernels' own times on every thread (on 2 cores a step runs
ops side by side, so it can exceed the wall time); the share per kind is what to optimise first.
The trace is kept (``--logdir``) for TensorBoard's profile plugin.

    .venv/bin/python benchmarks/step_profile.py [--size small] [--vocab 30522] [--steps 5]
"""
import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks import common  # noqa: E402
from benchmarks.pretraining_throughput import _batches, _build  # noqa: E402

# Op type -> kind. A type not listed counts as "other".
KINDS = {
    "matmul": ("MatMul", "_FusedMatMul", "FusedMatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3",
               "Einsum"),
    "softmax": ("Softmax", "SparseSoftmaxCrossEntropyWithLogits", "LogSoftmax"),
    "layer norm / reductions": ("Mean", "Sum", "Rsqrt", "SquaredDifference", "Max", "Prod",
                                "FusedBatchNormV3", "LayerNorm"),
    "cast": ("Cast",),
    "elementwise": ("Mul", "AddV2", "Sub", "RealDiv", "Erf", "Tanh", "Exp", "Pow", "Square", "Sqrt", "Neg",
                    "BiasAdd", "BiasAddGrad", "Select", "SelectV2", "Maximum", "Minimum", "Relu", "Reciprocal",
                    "ZerosLike", "OnesLike", "Fill", "BroadcastTo", "Tile", "AddN", "_FusedMul"),
    "gather / scatter / shape": ("GatherV2", "ResourceGather", "UnsortedSegmentSum", "ScatterNd", "Transpose",
                                 "Reshape", "ConcatV2", "Pack", "StridedSlice", "StridedSliceGrad", "Slice",
                                 "OneHot", "GatherNd", "TensorScatterUpdate", "Squeeze", "ExpandDims"),
    "optimizer": ("AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp", "ReadVariableOp",
                  "ResourceApplyAdam", "ResourceApplyAdamWithAmsgrad"),
    "input": ("IteratorGetNext", "IteratorGetNextAsOptional", "OptionalGetValue"),
}
KIND_OF = {op: kind for kind, ops in KINDS.items() for op in ops}


def kind_of(op_type: str) -> str:
    """The kind of an op type; oneDNN's variants (``_MklMatMul``, ``_MklNativeFusedMatMul``)
    count as the op they replace."""
    return KIND_OF.get(op_type) or KIND_OF.get(re.sub(r"^_Mkl(Native)?", "", op_type)) or "other"


OP_EVENT = re.compile(r"^(?P<name>[^:]+):(?P<type>_?[A-Z][A-Za-z0-9_]*)$")  # not "Executor::Process"
# Which part of the model an op belongs to, from its name (forward and gradient ops alike); the
# first key in this order found in the name wins, so the dropout and layer norm inside an attention
# block count as dropout and layer norm.
PARTS = (("dropout", "dropout (random mask, select, scale)"), ("norm", "layer norm"),
         ("mlm", "MLM head (tied projection, loss)"), ("feedforward", "feed-forward"), ("attention", "self-attention"),
         ("query", "self-attention"), ("key", "self-attention"), ("value", "self-attention"),
         ("embedding", "embeddings"), ("pooled", "pooler / NSP"), ("nsp", "pooler / NSP"),
         ("adamw", "optimizer"), ("assign", "optimizer"), ("iterator", "input"))


def op_times(logdir: str) -> tuple[collections.Counter, collections.Counter]:
    """(seconds per op type, seconds per model part) summed over the trace's executed TF ops:
    the host plane's events named ``<op name>:<op type>``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals, parts = collections.Counter(), collections.Counter()
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:"):
                continue
            for line in plane.lines:
                for event in line.events:
                    match = OP_EVENT.match(plane.event_metadata[event.metadata_id].name)
                    if not match:
                        continue
                    seconds = event.duration_ps / 1e12
                    totals[match["type"]] += seconds
                    name = match["name"].lower()
                    parts[next((part for key, part in PARTS if key in name), "other")] += seconds
    return totals, parts


def profile(model, data, steps: int, logdir: str) -> tuple[collections.Counter, collections.Counter, float]:
    """(seconds per op type, seconds per model part, wall seconds) per step, over
    ``steps`` profiled steps."""
    import tensorflow as tf

    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up outside the profile
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    times, parts = op_times(logdir)
    per_step = lambda counter: collections.Counter({k: t / steps for k, t in counter.items()})  # noqa: E731
    return per_step(times), per_step(parts), wall


def report(name: str, per_op: collections.Counter, parts: collections.Counter, wall: float, top: int) -> None:
    total = sum(per_op.values())
    print(f"\n{name}: {wall * 1e3:.0f} ms per step (wall), {total * 1e3:.0f} ms of op time per step")
    by_kind = collections.Counter()
    for op, t in per_op.items():
        by_kind[kind_of(op)] += t
    for kind, t in by_kind.most_common():
        print(f"  {kind:26} {t * 1e3:8.1f} ms  {t / total:6.1%}")
    print("  by model part:")
    for part, t in parts.most_common():
        print(f"    {part:36} {t * 1e3:8.1f} ms  {t / total:6.1%}")
    print(f"  top {top} op types:")
    for op, t in per_op.most_common(top):
        print(f"    {op:28} {t * 1e3:8.1f} ms  {t / total:6.1%}  ({kind_of(op)})")


def main():
    from tests.helpers import build_pretraining_examples

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="small")
    parser.add_argument("--variants", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--logdir", default="", help="where to keep the traces (default: a temporary dir)")
    args = parser.parse_args()
    common.check_machine()
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    uri = build_pretraining_examples(tmp, num_documents=200, max_seq_length=128).uri
    data, _, _ = _batches(uri, args.batch, args.vocab)
    print(f"{args.size}, seq 128, batch {args.batch}, vocabulary {args.vocab}; {args.steps} profiled steps each")
    for variant in args.variants:
        model, _ = _build("pipeline", variant, args.size, args.vocab)
        logdir = os.path.join(args.logdir or str(tmp), f"profile-{variant}")
        per_op, parts, wall = profile(model, data, args.steps, logdir)
        report(f"pipeline {variant}", per_op, parts, wall, args.top)
        print(f"  trace: tensorboard --logdir {logdir}")


if __name__ == "__main__":
    main()
