"""Hugging Face ``transformers`` BertForPreTraining (PyTorch, CPU) training steps at given
shapes: the external reference for benchmarks/pretraining_throughput.py. Runs in its own
environment (``make bench`` creates .bench-hf/ with torch + transformers), never imports TF.

    .bench-hf/bin/python benchmarks/hf_bert_pretraining.py --layers 2 --hidden 128 --heads 2 \
        --intermediate 512 --vocab 300 --seq 128 --batch 32 --steps 20
"""
import argparse
import json
import time

import torch
from transformers import BertConfig, BertForPreTraining


def main():
    p = argparse.ArgumentParser()
    for name, default in (("layers", 2), ("hidden", 128), ("heads", 2), ("intermediate", 512), ("vocab", 30522),
                          ("seq", 128), ("batch", 32), ("steps", 20), ("predictions", 20)):
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(torch.get_num_threads())
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

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - start
    print("RESULT", json.dumps({"tokens_per_s": a.steps * a.batch * a.seq / seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
