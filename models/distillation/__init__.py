"""Distillation: a fine-tuned teacher -> a student with fewer layers, for any task model built
on a BERT backbone. One module per concern:

* ``teacher``: the teacher's Keras model saved beside its SavedModel, loaded back, its vocabulary;
* ``student``: the student built from the teacher's layers (or another encoder);
* ``losses``: the soft-target loss of each kind of head;
* ``weighted_distiller``: the Distiller with sample weights and hidden-state / attention terms;
* ``transfer``: unlabelled transfer text mixed into a student's batches;
* ``size_report``: size and latency of the teacher and the student.

The student Trainer (teacher -> student -> Distiller -> the one loop -> report) is
``models/finetuning.py``'s ``distill_run_fn``.

The student's gate (TFMA thresholds as a share of the teacher's) is the pipeline's:
``pipeline/task_wiring.py``. Their public names are re-exported here (``distillation.X``).
"""
from tfx_bert_app.models.distillation.weighted_distiller import (  # noqa: F401
    BACKBONE_INPUTS,
    WeightedDistiller,
    layer_relations,
    multi_head_relations,
    distiller)
from tfx_bert_app.models.distillation.losses import (  # noqa: F401
    softmax_distillation,
    SigmoidLogitsDistillation,
    SpanDistillation,
    EmbeddingDistillation,
    MarginMSEDistillation,
    InBatchMarginMSE,
    MarkPaddedWords,
    mark_padded_words,
    WordLogitsDistillation)
from tfx_bert_app.models.distillation.size_report import (  # noqa: F401
    parameter_count,
    saved_model_mb,
    latency_ms,
    size_and_latency,
    report)
from tfx_bert_app.models.distillation.student import (  # noqa: F401
    layer_map,
    backbone_setting,
    num_layers,
    student_from_teacher,
    ffn_width,
    kept_neurons,
    student_from_encoder,
    backbones_of,
    backbone_of)
from tfx_bert_app.models.distillation.teacher import (  # noqa: F401
    KERAS_SUBDIR,
    KERAS_FILE,
    VOCAB_SUBDIR,
    teacher_path,
    save_teacher,
    load_teacher,
    teacher_tokenizer,
    check_shared_vocabulary)
from tfx_bert_app.models.distillation.transfer import (  # noqa: F401
    with_transfer_text)
