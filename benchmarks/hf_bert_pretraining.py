"""Hugging Face ``transformers`` BertForPreTraining (PyTorch, CPU) training steps at given
shapes: the external reference for benchmarks/pretraining_throughput.py. Runs in its own
environment (``make bench`` creates .bench-hf/ with torch + transformers), never imports TF.

One shot (the mean step of ``--steps``)::

    .bench-hf/bin/python benchmarks/hf_bert_pretraining.py --layers 2 --hidden 128 --heads 2 \
        --intermediate 512 --vocab 300 --seq 128 --batch 32 --steps 20

With ``--serve`` it builds and warms the model once, then reads a step count per line on stdin
and answers each with a ``RESULT`` line of per-step seconds, so the caller can time it in turns
with its own models (a noisy neighbour then slows both alike) and take the median step.
"""
import argparse
import json
import sys
import time

import torch
from transformers import BertConfig, BertForPreTraining


def build_step(a):
    """A closure running one training step of BertForPreTraining at the arguments' shapes."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                        num_attention_heads=a.heads, intermediate_size=a.intermediate, max_position_embeddings=512)
    model = BertForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(5, a.vocab, (a.batch, a.seq))
    labels = torch.full_like(ids, -100)
    for row in range(a.batch):
        positions = torch.randperm(a.seq - 2)[: a.predictions] + 1
        labels[row, positions] = ids[row, positions]
    nsp = torch.randint(0, 2, (a.batch,))
    token_type = torch.zeros_like(ids)
    mask = torch.ones_like(ids)

    def step():
        optimizer.zero_grad()
        out = model(input_ids=ids, token_type_ids=token_type, attention_mask=mask, labels=labels,
                    next_sentence_label=nsp)
        out.loss.backward()
        optimizer.step()

    return step


def timed_steps(step, count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        step()  # PyTorch on CPU runs synchronously: the step is done when it returns
        seconds.append(time.perf_counter() - start)
    return seconds


def main():
    p = argparse.ArgumentParser()
    for name, default in (("layers", 2), ("hidden", 128), ("heads", 2), ("intermediate", 512), ("vocab", 30522),
                          ("seq", 128), ("batch", 32), ("steps", 20), ("predictions", 20)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--serve", action="store_true", help="answer step counts read from stdin (see the docstring)")
    a = p.parse_args()
    step = build_step(a)
    timed_steps(step, 3)  # warm-up: allocator, autograd graph, optimizer state
    if a.serve:
        print("READY", json.dumps({"threads": torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            if line.strip():
                print("RESULT", json.dumps(timed_steps(step, int(line))), flush=True)
        return
    seconds = sum(timed_steps(step, a.steps))
    print("RESULT", json.dumps({"tokens_per_s": a.steps * a.batch * a.seq / seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
