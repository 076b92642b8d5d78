"""The WordPieceVocabGen executor, run for real: a vocabulary learned with the reserved tokens
first, or an existing one adopted."""
import json
import os

from tests.helpers import new_artifact, run_executor, vocab_props
from tfx_bert import tokenization
from tfx_bert_app.components.artifacts import Vocabulary
from tfx_bert_app.components.wordpiece_vocab import executor as vocab_ex


def test_vocabulary_is_learned_with_reserved_tokens_first(vocabulary):
    vocab = tokenization.read_vocab(os.path.join(vocabulary.uri, "vocab.txt"))
    assert vocab[:8] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]", "[unused2]"]
    assert len(vocab) <= 300
    for word in ("the", "rocket", "chef", "."):  # frequent corpus words become whole tokens
        assert word in vocab
    assert any(t.startswith("##") for t in vocab)
    report = json.load(open(os.path.join(vocabulary.uri, "vocab_report.json")))
    assert report["distinct_words"] > 50 and report["words"] > 1000
    assert tokenization.read_tokenizer_config(vocabulary.uri).lower_case is True


def test_existing_vocab_is_adopted(corpus_examples, tiny_vocab_dir, tmp_path):
    vocab = new_artifact(Vocabulary, tmp_path / "v")
    run_executor(vocab_ex.Executor, {"examples": [corpus_examples]}, {"vocabulary": [vocab]},
                 vocab_props(**{vocab_ex.NUM_UNUSED: 3, vocab_ex.VOCAB_PATH: os.path.join(tiny_vocab_dir, "vocab.txt")}), str(tmp_path))
    assert tokenization.read_vocab(os.path.join(vocab.uri, "vocab.txt")) == \
        tokenization.read_vocab(os.path.join(tiny_vocab_dir, "vocab.txt"))
