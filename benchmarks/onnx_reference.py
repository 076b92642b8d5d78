"""What a user would serve a BERT with on a CPU instead: Hugging Face's fast tokenizer + ONNX
Runtime, a ``BertForSequenceClassification`` exported by torch. Runs in its own environment
(``.bench-hf``: torch, transformers, onnxruntime; never the project's), started by
``benchmarks/cpu_serving.py``, which gives it the vocabulary, the model shape and the texts and
reads back its timings (JSON on stdout's last line).

    .bench-hf/bin/python benchmarks/onnx_reference.py --vocab V --shape JSON --texts FILE
"""
import argparse
import json
import os
import statistics
import tempfile
import time


def export_onnx(shape: dict, vocab_size: int, path: str) -> None:
    """A random-weight BERT classifier of ``shape`` (speed does not depend on the weights), with
    dynamic batch and sequence axes, as Optimum / torch.onnx export it."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=shape["hidden_dim"], num_hidden_layers=shape["num_layers"],
                        num_attention_heads=shape["num_heads"], intermediate_size=shape["intermediate_dim"],
                        max_position_embeddings=512, num_labels=2)
    model = BertForSequenceClassification(config).eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), path,
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)


def measure(session, tokenizer, texts: list[str], max_length: int, requests: int, rounds: int, batch: int) -> dict:
    """Batch 1: p50 / p99 ms over ``requests`` texts; batch ``batch``: texts/s over ``rounds``
    batches. Tokenizing (padded to the batch's longest) is part of each request, as in serving."""
    import numpy as np

    def run(batch_texts):
        encoded = tokenizer(batch_texts, padding="longest", truncation=True, max_length=max_length, return_tensors="np")
        logits = session.run(None, {k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")})[0]
        return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)

    for _ in range(3):
        run(texts[:batch])
    latencies = []
    for i in range(requests):
        start = time.perf_counter()
        run([texts[i % len(texts)]])
        latencies.append((time.perf_counter() - start) * 1e3)
    latencies.sort()
    start = time.perf_counter()
    for r in range(rounds):
        run([texts[(r * batch + j) % len(texts)] for j in range(batch)])
    seconds = time.perf_counter() - start
    return {"p50_ms": statistics.median(latencies), "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "texts_per_s": rounds * batch / seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", required=True)
    parser.add_argument("--shape", required=True, help="JSON: num_layers, hidden_dim, num_heads, intermediate_dim")
    parser.add_argument("--texts", required=True, help="JSON file: {length name: [texts]}")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--requests", type=json.loads, default="{}", help="JSON: {length name: batch-1 requests}")
    parser.add_argument("--rounds", type=json.loads, default="{}", help="JSON: {length name: batches}")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import onnxruntime as ort
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast(vocab_file=args.vocab, do_lower_case=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        export_onnx(json.loads(args.shape), tokenizer.vocab_size, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        with open(args.texts, encoding="utf-8") as f:
            texts = json.load(f)
        results = {name: measure(session, tokenizer, rows, args.max_length, int(args.requests.get(name, 200)),
                                 int(args.rounds.get(name, 10)), args.batch) for name, rows in texts.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
