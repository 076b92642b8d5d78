"""In-graph WordPiece (tfx_bert.tokenization, tensorflow-text FastBertTokenizer) vs the Hugging
Face `tokenizers` fast BERT tokenizer, same vocab.txt and text, same run. Median of 5.

    .venv/bin/python benchmarks/tokenization_throughput.py [--sentences 50000]
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner  # noqa: E402
from tokenizers import BertWordPieceTokenizer  # noqa: E402

from benchmarks import common  # noqa: E402
from tfx_bert import tokenization  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--vocab-size", type=int, default=30522)
    args = parser.parse_args()
    common.check_machine()
    tmp = tempfile.mkdtemp()
    corpus = os.path.join(tmp, "c.txt")
    common.write_corpus(corpus, 8.0)
    sentences = [l for l in open(corpus, encoding="utf-8").read().split("\n") if l][: args.sentences]
    counts = {}
    for s in sentences:
        for w in tokenization.basic_tokenize(s):
            counts[w] = counts.get(w, 0) + 1
    vocab = learner.learn(counts, args.vocab_size, tokenization.reserved_tokens())
    with open(os.path.join(tmp, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    ours = tokenization.WordPieceTokenizer(vocab)
    tokenize = tf.function(lambda t: ours.tokenize(t).flat_values,
                           input_signature=[tf.TensorSpec([None], tf.string)])
    batches = [tf.constant(sentences[i:i + args.batch]) for i in range(0, len(sentences), args.batch)]
    hf = BertWordPieceTokenizer(os.path.join(tmp, "vocab.txt"), lowercase=True)
    py_batches = [sentences[i:i + args.batch] for i in range(0, len(sentences), args.batch)]
    n_bytes = sum(len(s.encode()) for s in sentences)

    ours_s = common.median_time(lambda: [tokenize(b) for b in batches])
    os.environ["RAYON_NUM_THREADS"] = str(os.cpu_count())
    hf_s = common.median_time(lambda: [hf.encode_batch(b, add_special_tokens=False) for b in py_batches])
    tokens = sum(int(tf.size(tokenize(b))) for b in batches)
    print(f"vocab {len(vocab)} tokens, {len(sentences)} sentences, {n_bytes / 1e6:.1f} MB, {tokens} wordpieces, batch {args.batch}")
    print(f"tfx_bert (tensorflow-text, in-graph): {len(sentences) / ours_s:10.0f} sentences/s  {n_bytes / ours_s / 1e6:6.2f} MB/s")
    print(f"HF tokenizers encode_batch          : {len(sentences) / hf_s:10.0f} sentences/s  {n_bytes / hf_s / 1e6:6.2f} MB/s")
    print(f"ratio ours / HF: {hf_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
