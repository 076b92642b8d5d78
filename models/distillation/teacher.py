"""The teacher: the task model its Trainer saved beside the SavedModel
(``<model artifact>/Format-Keras/model.keras``, with its vocabulary). The SavedModel serves raw
text, the student trains on the Transform output, and both need the same Keras model. A teacher
from another run (``distill.teacher_uri``) must share the Transform's vocabulary
(``check_shared_vocabulary``)."""
from __future__ import annotations

import os
import tempfile

import keras
import tensorflow as tf

from tfx_bert import tokenization


KERAS_SUBDIR = "Format-Keras"
KERAS_FILE = "model.keras"


VOCAB_SUBDIR = "vocab"


def teacher_path(serving_model_dir: str) -> str:
    """Where a Trainer that ran with ``serving_model_dir`` keeps its Keras task model."""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), KERAS_SUBDIR, KERAS_FILE)


def save_teacher(model: keras.Model, serving_model_dir: str, tokenizer: tokenization.WordPieceTokenizer) -> str:
    """Saves the trained task model beside its SavedModel, for a later distillation, with its
    WordPiece vocabulary: a student's export tokenizes with it (NER's words, QA's windows), and a
    teacher given by URI must share it with the student's Transform (``check_shared_vocabulary``)."""
    path = teacher_path(serving_model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    tokenization.write_vocab_dir(os.path.join(os.path.dirname(path), VOCAB_SUBDIR), tokenizer.vocab, tokenizer.config)
    if "://" in path:  # Keras writes local files only
        local = os.path.join(tempfile.mkdtemp(), KERAS_FILE)
        model.save(local)
        tf.io.gfile.copy(local, path, overwrite=True)
    else:
        model.save(path)
    return path


def load_teacher(base_model: str) -> keras.Model:
    """The teacher task model of the Model artifact whose serving dir is ``base_model``."""
    from tfx_bert_app.models import encoder  # noqa: F401  (registers BertEncoder for loading)

    path = teacher_path(base_model)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"The teacher model {base_model} has no Keras task model at {path}: it was trained before "
            f"distillation existed, or by a task without distill_run_fn. Fine-tune it again with this version.")
    if "://" in path:
        local = os.path.join(tempfile.mkdtemp(), KERAS_FILE)
        tf.io.gfile.copy(path, local, overwrite=True)
        path = local
    return keras.models.load_model(path, compile=False)


def teacher_tokenizer(base_model: str) -> tokenization.WordPieceTokenizer:
    """The WordPiece tokenizer the teacher was trained with (saved by ``save_teacher``)."""
    directory = os.path.join(os.path.dirname(teacher_path(base_model)), VOCAB_SUBDIR)
    vocab_file = os.path.join(directory, tokenization.VOCAB_FILENAME)
    if not tf.io.gfile.exists(vocab_file):
        raise FileNotFoundError(f"The teacher model {base_model} has no vocabulary at {vocab_file}: fine-tune it "
                                f"again with this version.")
    return tokenization.WordPieceTokenizer(tokenization.read_vocab(vocab_file),
                                           tokenization.read_tokenizer_config(directory))


def check_shared_vocabulary(base_model: str, encoder_dir: str) -> None:
    """Refuses a teacher fine-tuned with another vocabulary than the Transform's encoder
    (``encoder_dir``): the student learns the teacher's outputs on the Transform's token ids, so a
    teacher that reads other ids teaches noise."""
    from tfx_bert_app.models import encoder as encoder_lib

    transform_vocab = list(encoder_lib.load_tokenizer(encoder_dir).vocab)
    teacher_vocab = list(teacher_tokenizer(base_model).vocab)
    if teacher_vocab == transform_vocab:
        return
    differ = next((i for i, (a, b) in enumerate(zip(teacher_vocab, transform_vocab)) if a != b),
                  min(len(teacher_vocab), len(transform_vocab)))
    pieces = lambda vocab: repr(vocab[differ]) if differ < len(vocab) else "nothing"  # noqa: E731
    raise ValueError(
        f"The teacher {base_model} was fine-tuned with another vocabulary than this pipeline's encoder {encoder_dir} "
        f"({len(teacher_vocab)} against {len(transform_vocab)} pieces; piece {differ} is {pieces(teacher_vocab)} "
        f"against {pieces(transform_vocab)}). The student learns the teacher's outputs on the Transform's token ids, "
        f"so both must share one vocabulary: set finetune.encoder_uri to the encoder the teacher was fine-tuned from.")
