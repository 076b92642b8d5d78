"""Helpers the tests share: tiny vocabularies, executors run for real, artifacts, examples.

Imported by test modules (``from tests.helpers import ...``); ``conftest.py`` holds only
fixtures and hooks.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tfx_bert import tokenization  # noqa: E402

TINY_WORDS = ("the cat dog sat on mat a , . ! ? hello world play ##ed ##ing ##s run "
              "un ##believ ##able happy sad movie good bad very").split()


def write_tiny_vocab(directory) -> str:
    """A vocab dir (vocab.txt + tokenizer_config.json) with a handful of words."""
    vocab = tokenization.reserved_tokens() + TINY_WORDS
    tokenization.write_vocab_dir(str(directory), vocab, tokenization.TokenizerConfig(lower_case=True))
    return str(directory)


BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def run_executor(executor_cls, inputs: dict, outputs: dict, props: dict, tmp_dir: str,
                 beam_args=BEAM_ARGS):
    """Runs a Beam-based executor's Do() for real, as the TFX launcher would."""
    from tfx.dsl.components.base import base_beam_executor

    from tfx_bert.beam_options import direct_runner_args

    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=direct_runner_args(beam_args),
                                                          tmp_dir=tmp_dir)
    executor_cls(context).Do(inputs, outputs, props)


def new_artifact(artifact_type, uri):
    artifact = artifact_type()
    artifact.uri = str(uri)
    return artifact


def read_examples(pattern: str):
    """All tf.Examples in gzip TFRecord files matching ``pattern``."""
    import glob

    import tensorflow as tf

    records = []
    for path in sorted(glob.glob(pattern)):
        for raw in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            records.append(tf.train.Example.FromString(raw.numpy()))
    return records


def build_pretraining_examples(tmp, num_documents=60, max_seq_length=32):
    """Runs TextExampleGen -> WordPieceVocabGen -> PretrainingDataGen executors on the demo
    corpus; returns the pretraining Examples artifact."""
    from tfx.types import standard_artifacts

    from tfx_bert_app.components.artifacts import Vocabulary
    from tfx_bert_app.components.pretraining_data import executor as data_ex
    from tfx_bert_app.components.text_example_gen import executor as gen_ex
    from tfx_bert_app.components.wordpiece_vocab import executor as vocab_ex
    from tfx_bert import demo_data

    demo_data.write_pretraining_corpus(str(tmp / "in" / "corpus.txt"), num_documents=num_documents)
    examples = new_artifact(standard_artifacts.Examples, tmp / "examples")
    run_executor(gen_ex.Executor, {}, {"examples": [examples]},
                 {gen_ex.INPUT_PATTERN: str(tmp / "in" / "*"), gen_ex.INPUT_FORMAT: "bert_raw",
                  gen_ex.TEXT_FIELD: "text", gen_ex.ID_FIELD: "", gen_ex.EVAL_PERCENT: 20,
                  gen_ex.MAX_LINE_CHARS: 1000, gen_ex.STRICT: 0, gen_ex.PER_LINE: 0}, str(tmp / "t1"))
    vocab = new_artifact(Vocabulary, tmp / "vocab")
    run_executor(vocab_ex.Executor, {"examples": [examples]}, {"vocabulary": [vocab]},
                 {vocab_ex.VOCAB_SIZE: 300, vocab_ex.LOWER_CASE: 1, vocab_ex.NUM_UNUSED: 0, vocab_ex.VOCAB_PATH: "",
                  vocab_ex.MAX_BYTES_PER_WORD: 100, vocab_ex.TEXT_FEATURE: "text"}, str(tmp / "t2"))
    out = new_artifact(standard_artifacts.Examples, tmp / "instances")
    run_executor(data_ex.Executor, {"examples": [examples], "vocabulary": [vocab]}, {"pretraining_examples": [out]},
                 {data_ex.MAX_SEQ_LENGTH: max_seq_length, data_ex.SHORT_SEQ_PROB: 0.1, data_ex.NSP_SHARDS: 2,
                  data_ex.SEED: 5, data_ex.MASKING: "dynamic", data_ex.DUPE_FACTOR: 1,
                  data_ex.MASKED_LM_PROB: 0.15, data_ex.MAX_PREDICTIONS: 5, data_ex.WHOLE_WORD_MASKING: 0}, str(tmp / "t3"))
    return out


def save_text_model(export_dir, vocab_dir, scale: float):
    """Raw text -> WordPiece (in-graph) -> a score; `scale` tells versions apart.

    Besides ``serving_default`` (text -> score, token_ids) it has TF Serving's classify
    (``classification``: classes short/long scored by token count) and regress
    (``regression``: the score) signatures over serialized tf.Examples with a ``text`` feature.
    """
    import tensorflow as tf

    from tfx_bert_app.models.export import CLASSIFY_METHOD_NAME, REGRESS_METHOD_NAME, set_method_names

    tok = tokenization.WordPieceTokenizer.from_directory(vocab_dir)
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        packed = tok.encode(text, 8)
        score = tf.cast(tf.reduce_sum(packed["token_ids"], axis=1), tf.float32) * scale
        return {"score": score, "token_ids": packed["token_ids"]}

    def parse(serialized):
        return tf.io.parse_example(serialized, {"text": tf.io.FixedLenFeature([], tf.string)})["text"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(serialized):
        tokens = tf.reduce_sum(tf.cast(tok.encode(parse(serialized), 8)["padding_mask"], tf.float32), axis=1)
        long_score = tokens / (tokens + 4.0)
        scores = tf.stack([1.0 - long_score, long_score], axis=1)
        classes = tf.tile(tf.constant([["short", "long"]]), [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(serialized):
        return {"outputs": serve(parse(serialized))["score"]}

    module.serve, module.classify, module.regress = serve, classify, regress
    tf.saved_model.save(module, str(export_dir), signatures={
        "serving_default": serve.get_concrete_function(),
        "classification": classify.get_concrete_function(),
        "regression": regress.get_concrete_function()})
    set_method_names(str(export_dir), {"classification": CLASSIFY_METHOD_NAME, "regression": REGRESS_METHOD_NAME})
