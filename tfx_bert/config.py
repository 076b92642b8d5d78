"""The typed configuration that flows from the CLI / runners into the pipeline factories.

One ``ProjectConfig`` holds everything; it is filled from defaults, then a YAML file, then
``section.key=value`` overrides (``--set pretrain.train_steps=200``). Nothing else reads flags or
environment variables.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from tfx_bert import accelerators, registry, spans, tasks
from tfx_bert.records import CORPUS_FORMATS, TASK_FORMATS


@dataclasses.dataclass
class PretrainConfig:
    """The pretraining pipeline: corpus -> vocabulary -> instances -> MLM+NSP Trainer."""

    pipeline_name: str = "tfx-bert-pretrain"
    corpus_pattern: str = ""  # glob of raw corpus files; empty -> the embedded demo corpus
    # Which spans a {SPAN}- / {YYYY}{MM}{DD}-style pattern reads (tfx_bert/spans.py): latest,
    # rolling:N (the newest N) or static:A-B; resolved when the pipeline runs.
    span_range: str = "latest"
    # The corpus's data gate (with enable_statistics): the ExampleValidator against schema_path
    # (ImportSchemaGen; empty: inferred) stops the run on anomalies unless allow_anomalies.
    schema_path: str = ""
    allow_anomalies: bool = False
    input_format: Literal[CORPUS_FORMATS] = "bert_raw"
    text_field: str = "text"  # jsonl/csv/tfrecord: the field holding the text
    id_field: str = ""  # jsonl/csv/tfrecord: a field holding a document id (else file:line)
    strict: bool = False  # fail on the first bad record instead of skipping and counting
    per_line: bool = False  # one example per line instead of per document
    max_line_chars: int = 100_000
    eval_percent: int = 10
    vocab_size: int = 30522
    lower_case: bool = True
    num_unused_tokens: int = 0
    vocab_path: str = ""  # an existing vocab.txt to use instead of learning one
    # Continue pretraining from a published checkpoint (Hugging Face BertForPreTraining /
    # BertForMaskedLM / BertModel, sentence-transformers, google-research TF1, a keras-hub preset)
    # or an earlier pretraining run's model; local, gs:// or a hub handle. Its architecture,
    # vocabulary, casing and MLM/NSP heads are kept (components/checkpoint_import); no vocabulary
    # is learned, and the continued-pretraining recipe's defaults apply (CONTINUED_PRETRAINING).
    init_from: str = ""
    model_size: str = "tiny"  # a registry size; "checkpoint" (set with init_from): the checkpoint's
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    masking: Literal["dynamic", "static"] = "dynamic"  # per batch, in tf.data | static: dupe_factor copies
    dupe_factor: int = 10  # static masking: differently masked copies of the corpus
    whole_word_masking: bool = False  # mask whole words (static, or per batch: models/whole_word_masking.py)
    short_seq_prob: float = 0.1
    nsp_shards: int = 4
    seed: int = 12345
    # Same inputs and hardware -> the same weights (tf.config.experimental.enable_op_determinism;
    # needs masking=static: masks drawn by PretrainingDataGen, seeded). For CI and debugging.
    deterministic: bool = False
    batch_size: int = 32
    train_steps: int = 1000
    eval_steps: int = 50
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    optimizer: Literal["adamw", "lamb"] = "adamw"
    dropout: float = 0.1
    # auto: from resources.trainer (TPU -> tpu, replicas > 1 -> multi_worker, several GPUs ->
    # mirrored, else default); or default | mirrored | multi_worker (TF_CONFIG) | tpu.
    distribution: Literal["auto", "default", "mirrored", "multi_worker", "tpu"] = "auto"
    tpu: str = ""  # TPU name/address for distribution=tpu
    # auto: mixed_bfloat16 on TPU, mixed_float16 on GPU, float32 on CPU; or "" | mixed_bfloat16 |
    # mixed_float16 | float32.
    mixed_precision: Literal["auto", "", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    batch_size_per_replica: int = 0  # > 0: global batch = this x replicas (overrides batch_size)
    jit_compile: bool = False  # XLA
    checkpoint_every: int = 200  # steps; a restarted Trainer resumes from the last one
    checkpoint_dir: str = ""  # empty -> <work_dir>/checkpoints
    # Optional second phase at a longer sequence length (BERT: 90% of steps at 128, then 512),
    # warm-started from phase 1's weights. 0 turns it off.
    phase2_max_seq_length: int = 0
    phase2_train_steps: int = 0
    phase2_max_predictions_per_seq: int = 80
    enable_statistics: bool = True


@dataclasses.dataclass
class TuningConfig:
    """TFX's Tuner before the fine-tuning Trainer (``finetune.tuning.*``, models/tuning.py)."""

    trials: int = 0  # 0: no Tuner
    steps_per_trial: int = 100  # each trial's fine-tuning, scored on the validation split
    oracle: Literal["random", "bayesian"] = "random"  # KerasTuner's RandomSearch / BayesianOptimization
    # The search space; empty: the grid of the encoder's recipe (registry.TUNING_GRIDS).
    learning_rates: list = dataclasses.field(default_factory=list)
    batch_sizes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FinetuneConfig:
    """A fine-tuning pipeline: task data -> Transform -> Trainer -> Evaluator -> Pusher.

    Settings without a task tag apply to every task; ``for_tasks`` ones to the tasks named.
    """

    pipeline_name: str = f"tfx-bert-{tasks.DEFAULT_TASK}"  # default: tfx-bert-<task>
    task: str = tasks.DEFAULT_TASK  # a key of tfx_bert/tasks.py TASKS (checked there)
    data_dir: str = ""  # task data; empty -> the task's embedded demo data (tfx-bert generate-data)
    # A pretrained encoder: a keras-hub preset, Hugging Face or sentence-transformers directory, or
    # a google-research TF1 checkpoint (the last three converted once); empty -> latest pretrained.
    encoder_uri: str = ""
    # The checkpoint's casing when its tokenizer configuration does not say (TF1 checkpoints).
    encoder_casing: Literal["auto", "uncased", "cased"] = "auto"
    model_name: str = tasks.DEFAULT_TASK  # default: the task's name
    # Task data (TaskExampleGen): files under data_dir, their format and fields.
    input_format: Literal[TASK_FORMATS] = "csv"
    train_pattern: str = "train/*"  # may hold TFX's {SPAN}, {VERSION}, {YYYY}/{MM}/{DD} (tfx_bert/spans.py)
    eval_pattern: str = "eval/*"
    span_range: str = "latest"  # as pretrain.span_range: latest, rolling:N or static:A-B
    text_field: str = "text"
    text_b_field: str = ""  # sentence pairs (MRPC, QNLI, RTE, ...): the second text's field
    label_field: str = "label"
    label_names: list = dataclasses.field(default_factory=list)  # label strings in id order; empty: ints
    strict: bool = False  # fail on the first bad record instead of skipping and counting
    num_classes: int = 2
    max_seq_length: int = 64
    seed: int = 12345
    deterministic: bool = False  # as pretrain.deterministic
    # The defaults of the training settings below follow the encoder (registry.RECIPES): "auto"
    # picks by its width (tiny < 256, compact < 768, else the BERT paper's); a value set here wins.
    recipe: Literal["auto", "tiny", "compact", "bert"] = "auto"
    batch_size: int = 32
    train_steps: int = 300
    epochs: float = 0.0  # > 0: passes over the training split instead of train_steps (counted at run time)
    eval_steps: int = 20
    # The validation split (models/finetuning.py): held out of the train split by a hash of each
    # record (validation_percent), or read from validation_pattern under data_dir. Training is
    # evaluated on it every eval_every steps (0: five times over the run), its best weights by the
    # task's main Keras metric (else the loss) are exported, and with patience > 0 it stops after
    # that many evaluations without improvement. The eval split is then only the Evaluator's.
    # validation_percent 0 without a pattern: no validation, the last step's weights are exported.
    validation_percent: int = 10
    validation_pattern: str = ""
    eval_every: int = 0
    patience: int = 0
    # auto: the Trainer continues from this pipeline's latest blessed model (head included) where
    # its task, label set (Task.label_settings), vocabulary and shapes match this run's, else
    # starts from the encoder and says why in the log; off: always from the encoder.
    warm_start: Literal["auto", "off"] = "auto"
    # The data gate (components/data_gate) before Transform: the ExampleValidator's anomalies
    # against schema_path (a curated schema: `tfx-bert schema promote`; empty: inferred from the
    # span itself), rows with labels outside the label set, and drift of the train split against
    # the data behind the latest blessed model (0 turns a check off). Defaults: a tenth of the
    # labels' mass moving, or a JS divergence of 0.1, is far above what sampling alone does to two
    # spans of 1,000 rows (L-infinity 0.022 per standard deviation for a 50/50 label, 4.5 sigma;
    # JS about 0.003 over these histograms) and well below what a real shift does (0.3-0.6).
    schema_path: str = ""
    drift_label_linf: float = 0.1
    drift_length_js: float = 0.1
    drift_unknown_js: float = 0.1
    allow_anomalies: bool = False  # train and push a span despite its anomalies (they are still recorded)
    tuning: TuningConfig = dataclasses.field(default_factory=TuningConfig)
    # The model card of every pushed version (assets.extra/model_card.md): its considerations.
    intended_use: str = ""
    limitations: str = ""
    learning_rate: float = 5e-4
    dropout: float = 0.1
    accuracy_threshold: float = 0.6  # blessing: the task's main metric (accuracy; NER: entity F1) at least this
    # ... and at most this much below the baseline's (the latest blessed model; TFMA's change
    # threshold, in the metric's unit, SQuAD F1 as a fraction): 0 blesses no regression at all,
    # which on a small eval set also refuses a new span that is merely as good within noise.
    max_regression: float = 0.0
    # Evaluation by slice (models/slices.py): TFMA reports each value of these feature keys beside
    # the overall slice: a column of the data read beside the text (a source, a domain), or a key
    # derived from the text (length_bucket: pieces against max_seq_length; unknown_rate_bucket:
    # the share of [UNK] pieces; tasks with derived_slices). The run summary names the worst slice.
    # min_slice_size > 0: every slice of at least that many examples must pass the gate's
    # thresholds (0: only the overall slice does; the slices are reported).
    slices: list = dataclasses.field(default_factory=list)
    min_slice_size: int = 0
    keep_versions: int = 5  # pushed versions kept under <serving_base>/<model_name>/
    warmup_texts: list = dataclasses.field(
        default_factory=lambda: ["a warm-up request .", "another warm-up request for the model ."])
    # The Keras dtype policy of training (models/precision.py): auto resolves from
    # resources.trainer as pretrain.mixed_precision does (GPU: mixed_float16, TPU: mixed_bfloat16,
    # else float32). The matmuls run in the half type; losses, CRF, pooling and similarity stay
    # float32, and the served model is float32 unless export_precision says otherwise.
    mixed_precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    # The served model's weights (models/compression.py): float16 halves them (fast on GPUs),
    # int8 (Keras quantization) is about a third (on CPU: memory, not speed).
    export_precision: Literal["float32", "float16", "int8"] = "float32"
    # The served graph pads each batch to its longest row rounded up to a multiple of this many
    # pieces, not to max_seq_length as training does (0: always max_seq_length; 1: exactly the
    # longest). Outputs are the same; a short text costs what its length does. 8 keeps a few
    # shapes per batch size (caches, XLA) and pads little: benchmarks/cpu_serving.py, BERT-small,
    # 32 texts of 12-20 pieces: 84 ms at 1, 99 at 8, 129 at 16.
    export_length_bucket: int = 8
    # Training and validation batches likewise: each cut to its longest row rounded up to a
    # multiple of this many pieces (0: max_seq_length). Same losses, less padding computed
    # (models/length_buckets.py); retrieval's queries and negatives and re-ranking's candidate lists
    # too (each sequence cut); long-text windows keep theirs.
    train_length_bucket: int = 16
    # The task's own settings (``finetune.task``'s ``Settings`` class, models/tasks/): set and read as
    # ``finetune.KEY`` like the shared ones above; None: the task's defaults.
    task_settings: Any = None

    def __post_init__(self):
        if self.task_settings is None:
            self.task_settings = _task_settings_class(self.task)()

    def __getattr__(self, name: str):  # only for names that are not shared fields: the task's settings
        settings = self.__dict__.get("task_settings")
        if name.startswith("__") or settings is None:
            raise AttributeError(name)
        if not hasattr(settings, name):
            raise AttributeError(_not_a_setting(name, self.task))
        return getattr(settings, name)

    def __setattr__(self, name: str, value) -> None:
        if name in _FINETUNE_FIELDS or "task_settings" not in self.__dict__:
            object.__setattr__(self, name, value)
        elif hasattr(self.task_settings, name):
            setattr(self.task_settings, name, value)
        else:
            raise AttributeError(_not_a_setting(name, self.task))

    @classmethod
    def for_task(cls, task: str, **settings) -> "FinetuneConfig":
        """A FinetuneConfig of ``task`` with ``settings`` (shared and the task's own, by key)."""
        config = cls(task=task)
        for key, value in settings.items():
            setattr(config, key, value)
        return config

    @property
    def has_validation(self) -> bool:
        """Whether training has a validation split (held out or read)."""
        return bool(self.validation_percent or self.validation_pattern)

    def setting(self, name: str, default: Any) -> Any:
        """The task's setting ``name``, or ``default`` for a task that has no such setting."""
        return getattr(self.task_settings, name, default)

    def settings_dict(self) -> dict:
        """Every setting by key, flat: the shared ones, then the task's own."""
        shared = {f.name: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
                  for f in dataclasses.fields(self) if f.name != "task_settings"
                  for value in [getattr(self, f.name)]}
        return {**copy.deepcopy(shared), **dataclasses.asdict(self.task_settings)}


def _task_settings_class(task: str):
    return tasks.get_task(task).Settings


def _not_a_setting(name: str, task: str) -> str:
    owners = tasks.settings_owners().get(name)
    if owners:
        return (f"Config key finetune.{name} is a setting of the {', '.join(owners)} task(s), but finetune.task is "
                f"{task}: remove it, or set finetune.task to one of those.")
    return f"finetune.{name} is not a setting of fine-tuning or of the {task} task."


@dataclasses.dataclass
class ServingConfig:
    """Where models are pushed and how the development server listens."""

    serving_base: str = ""  # empty -> <work_dir>/serving; on Kubernetes a gs:// path
    host: str = "127.0.0.1"
    grpc_port: int = 8500
    rest_port: int = 8501
    poll_seconds: float = 2.0  # how often servers look for new versions
    # What one request may take. REST: a larger declared body is refused (413) before it is read;
    # idle or slow connections close. REST and gRPC: more rows (instances, examples, the first
    # dimension of an input tensor) than max_rows are refused before any tensor is built.
    rest_max_request_bytes: int = 32 << 20
    max_rows: int = 4096
    rest_timeout_ms: int = 30000  # TF Serving's --rest_api_timeout_in_ms
    enable_batching: bool = False
    max_batch_size: int = 32
    batch_timeout_micros: int = 2000  # TF Serving's CPU advice: 0 (batches grow with load), then 1-10 ms
    num_batch_threads: int = 0  # batches run at once; 0: left out of the file (tfx-bert serve: the CPU cores)
    # TF Serving's --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism; 0: TensorFlow
    # picks. Small models at batch 1 serve faster with intra-op 1 (benchmarks/serving_throughput.py).
    intra_op_parallelism: int = 0
    inter_op_parallelism: int = 0
    # Kubernetes (kubeflow/serving_manifests.py): TF Serving's official image over serving_base.
    image: str = "tensorflow/serving:2.16.1"
    replicas: int = 2
    namespace: str = "default"
    cpu: str = "2"
    memory: str = "4Gi"
    service_account: str = ""  # one with read access to serving_base (e.g. GKE workload identity)


@dataclasses.dataclass
class EmbedderConfig:
    """The embedding pipeline (``tfx-bert export-embedder --push``): ``finetune.encoder_uri`` served
    as a sentence-embedding model without training, through the Pusher's checks, and optionally
    indexed. ``auto``: the sentence-transformers model's own setting, else mean / normalised / 128."""

    pipeline_name: str = "tfx-bert-embedder"
    model_name: str = "embedder"
    pooling: Literal["auto", "mean", "max", "cls"] = "auto"
    normalize: Literal["auto", "true", "false"] = "auto"
    max_seq_length: int = 0  # 0: auto
    index_corpus: str = ""  # a corpus file to index with the pushed model (empty: none)
    index_corpus_format: Literal["beir", "msmarco"] = "beir"
    index_type: str = "IVF_FLAT"  # as finetune.index_type
    vector_store_uri: str = ""  # empty: <work_dir>/vectors/milvus.db


@dataclasses.dataclass
class ScoreConfig:
    """Batch scoring (``tfx-bert score``): a pushed model over files with TFX's BulkInferrer. The
    files are read with ``finetune``'s loader settings (``input_format``, ``text_field``, ...),
    without labels; ``finetune.task`` decodes the outputs."""

    model_name: str = ""  # a model under serving_base; empty: finetune.model_name
    version: str = ""  # a pushed version; empty: the newest
    input_pattern: str = ""  # the files to score (a path or glob; gs:// on Dataflow)
    output: str = ""  # the scored file; empty: <work_dir>/scores/<model_name>.<format>
    format: Literal["jsonl", "csv"] = "jsonl"
    pipeline_name: str = ""  # empty: <finetune.pipeline_name>-score


@dataclasses.dataclass
class DistillConfig:
    """Distillation (``tfx-bert distill``, or ``tfx-bert finetune`` with ``enabled``): the
    fine-tuned model of this pipeline's Trainer, or ``teacher_uri`` (the teacher) -> a student with fewer of its
    layers (DistilBERT's initialisation), trained on the teacher's soft targets and the labels
    over the same Transform output, blessed when its main metric keeps ``min_retention`` of the
    teacher's on the same eval split (TFMA, the teacher as baseline), pushed as ``model_name``."""

    enabled: bool = False
    student_layers: int = 0  # 0: half the teacher's, rounded up (DistilBERT: 6 of 12)
    # The share of each layer's feed-forward neurons the student keeps (the most important by
    # weight magnitude: width pruning, as DynaBERT and CoFi do). The feed-forward block holds two
    # thirds of a layer's matmuls, so 0.5 serves about a third faster per layer. 1: all.
    ffn_keep: float = 1.0
    # Another pretrained encoder for the student instead of the teacher's own layers: a registry
    # size the pretraining pipeline trained, or an imported checkpoint (any depth and width; the
    # teacher's vocabulary). The task head starts afresh on it. Empty: the teacher's layers.
    student_encoder_uri: str = ""
    temperature: float = 2.0  # of the soft targets (DistilBERT: 2); the soft loss is scaled by T^2
    alpha: float = 0.5  # weight of the soft-target loss; 1 - alpha: the labels' loss
    # Weight of a hidden-state term added to the loss: DistilBERT's 1 - cosine between the last
    # hidden states over the real tokens, through a learned projection when the student is
    # narrower (TinyBERT). Tasks fed one sequence only (HIDDEN_STATE_TASKS); 0: off.
    hidden_weight: float = 0.0
    # Weight of MiniLM's deep self-attention term: KL between the last layers' attention
    # distributions and between their value relations (softmax(V V^T / sqrt(d)) per head). The
    # student needs as many heads as the teacher; HIDDEN_STATE_TASKS only; 0: off.
    attention_weight: float = 0.0
    # MiniLM v2: > 0 compares query-query, key-key and value-value relations over this many
    # relation heads (each projection's heads concatenated and split again), so the student's
    # heads and width are free; it must divide both widths. 0: MiniLM v1 (heads must match).
    relation_heads: int = 0
    # Which layers those two terms compare: last (the last layers: DistilBERT, MiniLM) or all
    # (every student layer against the teacher layer it starts from, layer_map, and for the
    # hidden-state term the embeddings too: TinyBERT's intermediate and embedding layers).
    layer_mapping: Literal["last", "all"] = "last"
    train_steps: int = 0  # 0: finetune.train_steps
    learning_rate: float = 0.0  # 0: finetune.learning_rate
    min_retention: float = 0.97  # blessing: student metric >= this x the teacher's
    model_name: str = ""  # empty: <finetune.model_name>-student
    export_precision: str = ""  # float32 | float16 | int8 (models/compression.py); empty: finetune.export_precision
    # A fine-tuned task model to distil instead of this pipeline's own Trainer: another run's
    # Trainer output (<uri>/Format-Serving, local or gs://, beside its Format-Keras task model).
    # The pipeline then trains, gates and pushes the student only. Empty: this pipeline's teacher.
    teacher_uri: str = ""
    # Unlabelled in-domain text the teacher labels with its soft outputs (DistilBERT's and
    # TinyBERT's transfer set): a glob of text files, one text per line, local or gs:// (the
    # pretraining corpus's *.txt reads as such). transfer_share of each batch's examples come
    # from it; they count in the soft-target loss only. Tasks that read one text, a pair (a
    # line and the next) or a sentence's words: TRANSFER_TEXT_TASKS. transfer_max: at most that
    # many lines (0: all). Empty: labelled only.
    transfer_pattern: str = ""
    transfer_share: float = 0.5
    transfer_max: int = 0


@dataclasses.dataclass
class ResourceConfig:
    """Container resources of one kind of step on Kubeflow / Vertex; 0 or empty: cluster default.

    ``accelerator_type``: on Kubeflow Pipelines the resource name (``nvidia.com/gpu``); on Vertex
    AI Pipelines the accelerator (``NVIDIA_TESLA_T4``, ``NVIDIA_A100_80GB``, ``TPU_V3``, ...).
    """

    cpu: float = 0.0
    memory_gb: float = 0.0
    accelerator_type: str = ""
    accelerator_count: int = 0
    replicas: int = 1  # Trainer only: > 1 trains multi-worker (Vertex custom job, TF_CONFIG)
    machine_type: str = ""  # Vertex custom job machine for multi-worker training, e.g. a2-highgpu-1g

    @property
    def is_tpu(self) -> bool:
        return self.accelerator_type.upper().startswith("TPU")

    @property
    def gpus(self) -> int:
        return 0 if self.is_tpu or not self.accelerator_type else self.accelerator_count


@dataclasses.dataclass
class ResourcesConfig:
    """Resources per kind of step; the Trainer's also choose its tf.distribute strategy."""

    trainer: ResourceConfig = dataclasses.field(default_factory=ResourceConfig)
    beam: ResourceConfig = dataclasses.field(default_factory=ResourceConfig)  # Beam-based components
    default: ResourceConfig = dataclasses.field(default_factory=ResourceConfig)  # everything else


@dataclasses.dataclass
class BeamConfig:
    """Which Beam runner the Beam-based components use; see tfx_bert/beam_options.py."""

    runner: Literal["direct", "dataflow", "flink", "spark"] = "direct"
    # direct: auto -> in_memory when a local run's input is under direct_in_memory_below_mb (worker
    # processes cost more to start than they save on small data: Transform took 86-164 s on 40
    # examples), else multi_processing with one worker per core (also when the size is unknown:
    # compiled for Kubeflow).
    direct_running_mode: Literal["auto", "in_memory", "multi_threading", "multi_processing"] = "auto"
    direct_in_memory_below_mb: int = 64
    project: str = ""  # dataflow
    region: str = ""  # dataflow
    temp_location: str = ""  # dataflow: gs://bucket/tmp
    staging_location: str = ""  # dataflow; empty -> temp_location
    machine_type: str = ""  # dataflow worker machine, e.g. n1-standard-8
    max_num_workers: int = 0  # dataflow autoscaling ceiling
    sdk_container_image: str = ""  # dataflow/portable: a worker image with this package installed
    flink_master: str = ""  # flink: host:port of the JobManager (Beam then starts its job server from its jar)
    job_endpoint: str = ""  # flink/spark: host:port of a running Beam job server (`tfx-bert flink up` starts one)
    spark_master: str = ""  # spark: spark://host:7077
    environment_type: str = ""  # portable runners: DOCKER | PROCESS | EXTERNAL | LOOPBACK
    environment_config: str = ""  # e.g. the SDK harness image for DOCKER
    parallelism: int = 0  # flink/spark default parallelism
    setup_file: str = ""  # shipped to workers; empty -> this checkout's setup.py
    extra_args: list = dataclasses.field(default_factory=list)  # appended verbatim


@dataclasses.dataclass
class KubeflowConfig:
    """Compiling for Kubeflow Pipelines v2 / Vertex AI Pipelines (kubeflow/runner.py)."""

    image: str = "tfx-bert:latest"  # the image built from kubeflow/Dockerfile
    platform: Literal["kfp", "vertex"] = "kfp"  # Vertex: TPUs, multi-worker custom jobs
    pipeline_root: str = ""  # gs://bucket/root; per run: --pipeline-root at submission
    project: str = ""  # vertex
    region: str = "us-central1"  # vertex
    image_setup_file: str = "/tfx-bert/setup.py"  # setup.py inside the image, for Beam workers
    runtime_parameters: bool = True  # data paths, step counts, model size settable per run


@dataclasses.dataclass
class ProjectConfig:
    """Everything a run needs; paths default to places under ``work_dir``."""

    work_dir: str = "work"
    # DirectRunner flags; without --direct_running_mode, beam.direct_running_mode picks it.
    beam_pipeline_args: list = dataclasses.field(default_factory=list)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    serving: ServingConfig = dataclasses.field(default_factory=ServingConfig)
    embedder: EmbedderConfig = dataclasses.field(default_factory=EmbedderConfig)
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)
    score: ScoreConfig = dataclasses.field(default_factory=ScoreConfig)
    resources: ResourcesConfig = dataclasses.field(default_factory=ResourcesConfig)
    beam: BeamConfig = dataclasses.field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = dataclasses.field(default_factory=KubeflowConfig)

    # Derived paths ---------------------------------------------------------------------
    @property
    def pipelines_root(self) -> str:
        return os.path.join(os.path.abspath(self.work_dir), "pipelines")

    @property
    def metadata_path(self) -> str:
        return os.path.join(os.path.abspath(self.work_dir), "metadata.sqlite")

    @property
    def data_dir(self) -> str:
        return os.path.join(os.path.abspath(self.work_dir), "data")

    @property
    def checkpoint_root(self) -> str:
        return _absolute(self.pretrain.checkpoint_dir or os.path.join(self.work_dir, "checkpoints"))

    @property
    def serving_base(self) -> str:
        return _absolute(self.serving.serving_base or os.path.join(self.work_dir, "serving"))

    def validate(self) -> "ProjectConfig":
        """Checks every value once, before anything runs (the one place rules live); returns self."""
        if self.pretrain.model_size != FROM_CHECKPOINT or not self.pretrain.init_from:
            registry.get_model_size(self.pretrain.model_size)
        task = tasks.get_task(self.finetune.task)
        for section in (self.pretrain, self.finetune, self.serving, self.embedder, self.distill, self.score, self.beam,
                        self.kubeflow):
            _check_choices(section, SECTION_NAMES[type(section)])
        _check_choices(self.finetune.task_settings, "finetune")
        _check_choices(self.finetune.tuning, "finetune.tuning")
        p, f = self.pretrain, self.finetune
        checks = [
            (0 < p.eval_percent < 100, "pretrain.eval_percent must be in 1..99"),
            (f.export_length_bucket >= 0, "finetune.export_length_bucket must be 0 or more"),
            (f.train_length_bucket >= 0, "finetune.train_length_bucket must be 0 or more"),
            (p.vocab_size >= 100 or p.init_from, "pretrain.vocab_size must be at least 100"),
            (8 <= p.max_seq_length <= 512, "pretrain.max_seq_length must be 8..512"),
            (8 <= f.max_seq_length <= 512, "finetune.max_seq_length must be 8..512"),
            (0 < p.masked_lm_prob < 1, "pretrain.masked_lm_prob must be in (0, 1)"),
            (p.train_steps > 0, "pretrain.train_steps must be positive"),
            (f.epochs >= 0, "finetune.epochs must be >= 0 (0: finetune.train_steps)"),
            (f.train_steps > 0, "finetune.train_steps must be positive"),
            (min(p.batch_size, f.batch_size) > 0, "pretrain.batch_size and finetune.batch_size must be positive"),
            (min(p.learning_rate, f.learning_rate) > 0,
             "pretrain.learning_rate and finetune.learning_rate must be positive"),
            (0 <= p.dropout < 1 and 0 <= f.dropout < 1, "pretrain.dropout and finetune.dropout must be in [0, 1)"),
            (min(p.eval_steps, f.eval_steps) >= 0, "pretrain.eval_steps and finetune.eval_steps must be >= 0"),
            (p.warmup_steps >= 0, "pretrain.warmup_steps must be >= 0"),
            (f.keep_versions >= 1, "finetune.keep_versions must be at least 1 (the pushed version itself)"),
            (all(0 < port < 65536 for port in (self.serving.grpc_port, self.serving.rest_port)),
             "serving.grpc_port and serving.rest_port must be 1..65535"),
            (self.serving.poll_seconds >= 0, "serving.poll_seconds must be >= 0 (0: never poll)"),
            (self.embedder.max_seq_length == 0 or 8 <= self.embedder.max_seq_length <= 512,
             "embedder.max_seq_length must be 0 (auto) or 8..512"),
            (f.num_classes >= 2, "finetune.num_classes must be at least 2"),
            (not p.phase2_max_seq_length
             or (p.max_seq_length < p.phase2_max_seq_length <= 512 and p.phase2_train_steps > 0),
             "pretrain.phase2_max_seq_length must exceed max_seq_length (<= 512) with phase2_train_steps > 0"),
            (not p.deterministic or p.masking == "static",
             "pretrain.deterministic needs pretrain.masking=static (keras-hub's dynamic masker draws "
             "from stateful random ops in tf.data, whose order varies between runs)"),
            (p.batch_size_per_replica >= 0, "pretrain.batch_size_per_replica must be >= 0"),
            (self.resources.trainer.replicas >= 1, "resources.trainer.replicas must be at least 1"),
            (self.resources.trainer.replicas == 1 or self.kubeflow.platform == "vertex",
             "resources.trainer.replicas > 1 needs kubeflow.platform=vertex (multi-worker custom "
             "job); on Kubernetes without Vertex see the TFJob section of the README"),
            (0 <= f.accuracy_threshold <= 1, "finetune.accuracy_threshold in [0, 1]"),
            *_slice_checks(f),
            (0 <= f.validation_percent < 100, "finetune.validation_percent must be in 0..99 (0: no validation split "
                                              "unless finetune.validation_pattern names one)"),
            (min(f.eval_every, f.patience) >= 0, "finetune.eval_every and finetune.patience must be >= 0 (0: five "
                                                 "evaluations; no early stopping)"),
            (not f.patience or f.has_validation, "finetune.patience needs a validation split: set "
                                                 "finetune.validation_percent or finetune.validation_pattern"),
            (min(f.drift_label_linf, f.drift_length_js, f.drift_unknown_js) >= 0
             and max(f.drift_label_linf, f.drift_length_js, f.drift_unknown_js) <= 1,
             "finetune.drift_label_linf, drift_length_js and drift_unknown_js in [0, 1] (0: that check off)"),
            (f.tuning.trials >= 0 and f.tuning.steps_per_trial > 0,
             "finetune.tuning.trials must be >= 0 (0: no Tuner) and finetune.tuning.steps_per_trial positive"),
            (not f.tuning.trials or f.has_validation,
             "finetune.tuning scores trials on the validation split: set finetune.validation_percent or "
             "finetune.validation_pattern"),
            (_positive_numbers(f.tuning.learning_rates, float) and _positive_numbers(f.tuning.batch_sizes, int),
             "finetune.tuning.learning_rates and batch_sizes must be positive numbers (batch sizes whole)"),
            (0 <= f.max_regression <= 1, "finetune.max_regression in [0, 1] (how far below the baseline's main "
                                         "metric a candidate may fall and still be blessed)"),
            (min(self.serving.rest_max_request_bytes, self.serving.max_rows, self.serving.rest_timeout_ms) > 0,
             "serving.rest_max_request_bytes, serving.max_rows and serving.rest_timeout_ms must be positive"),
            *task.checks(f),
            *self._distill_checks(task),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Invalid configuration: {message}.")
        for section, where in ((p, "pretrain"), (f, "finetune")):
            try:
                spans.parse_range(section.span_range)
            except ValueError as e:
                raise ValueError(f"Invalid configuration: {where}.span_range: {e}.") from None
        return self

    def _distill_checks(self, task) -> list:
        d = self.distill
        distillable = _tasks_that("distillable")
        return [
            (not d.enabled or task.distillable,
             f"distill.enabled: the {task.name} task has no distillation stage yet (tasks that have: {distillable})"),
            (d.student_layers >= 0, "distill.student_layers must be >= 0 (0: half the teacher's layers)"),
            (d.temperature > 0, "distill.temperature must be > 0"),
            (0 <= d.alpha <= 1, "distill.alpha must be in [0, 1]"),
            (d.hidden_weight >= 0, "distill.hidden_weight must be >= 0 (0: no hidden-state term)"),
            (not d.hidden_weight or task.feeds_one_sequence,
             f"distill.hidden_weight: the {task.name} task's model is not fed one sequence (tasks it works for: "
             f"{_tasks_that('feeds_one_sequence')}); set it to 0"),
            (d.attention_weight >= 0, "distill.attention_weight must be >= 0 (0: no attention term)"),
            (d.relation_heads >= 0, "distill.relation_heads must be >= 0 (0: MiniLM v1's per-head terms)"),
            (not d.attention_weight or task.feeds_one_sequence,
             f"distill.attention_weight: the {task.name} task's model is not fed one sequence (tasks it works for: "
             f"{_tasks_that('feeds_one_sequence')}); set it to 0"),
            (d.train_steps > 0 and d.learning_rate > 0,
             "distill.train_steps and distill.learning_rate must be positive (0: the fine-tuning ones)"),
            (0 < d.min_retention <= 1, "distill.min_retention must be in (0, 1]"),
            (d.model_name != self.finetune.model_name, "distill.model_name must differ from finetune.model_name"),
            (0 < d.ffn_keep <= 1, "distill.ffn_keep must be in (0, 1] (the share of feed-forward neurons kept)"),
            (not (d.student_encoder_uri and d.ffn_keep < 1),
             "distill.ffn_keep and distill.student_encoder_uri exclude each other: the student narrows the "
             "teacher's layers, or takes another encoder's (set distill.ffn_keep=1 with an encoder)"),
            (not (d.student_encoder_uri and d.student_layers),
             "distill.student_layers and distill.student_encoder_uri exclude each other: the student takes "
             "the teacher's layers, or another encoder's"),
            (not d.teacher_uri or d.enabled,
             "distill.teacher_uri is set but distill.enabled is false: enable distillation (tfx-bert distill) "
             "or clear distill.teacher_uri"),
            (d.export_precision in ("float32", "float16", "int8"),
             f"distill.export_precision must be float32, float16 or int8; got {d.export_precision!r}"),
            (not d.transfer_pattern or task.reads_transfer_text,
             f"distill.transfer_pattern: the {task.name} task's examples are not one text, a pair of texts or "
             f"a sentence's words (tasks it works for: {_tasks_that('reads_transfer_text')}); clear it"),
            (0 < d.transfer_share < 1 and d.transfer_max >= 0,
             "distill.transfer_share must be in (0, 1) and distill.transfer_max >= 0 (0: every line)"),
            (not (self._reads_windows() and (d.hidden_weight or d.attention_weight)),
             "distill.hidden_weight and distill.attention_weight compare one sequence's states; with "
             "finetune.max_windows > 1 an example is several windows: distil the pooled logits only (set both to 0)"),
        ]

    def _reads_windows(self) -> bool:
        """Whether the fine-tuning task reads long texts in windows (task_settings.WindowSettings;
        QA's windows are its own)."""
        windowed = getattr(self.finetune.task_settings, "windowed", None)
        return bool(windowed and windowed())

    def to_dict(self) -> dict:
        """Every section as plain data; ``finetune`` flat: the shared settings, then the task's."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data = {k: v if k == "finetune" else (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else copy.deepcopy(v))
                for k, v in data.items()}
        data["finetune"] = self.finetune.settings_dict()
        return data

    def effective_dict(self) -> dict:
        """What ``show-config`` prints and each run records: every value a run reads (the
        ``finetune`` section holds only ``finetune.task``'s own settings, after the shared ones)."""
        return self.to_dict()

    def effective_yaml(self) -> str:
        """``effective_dict`` as YAML, grouped by owner: a comment opens the task's own settings
        within ``finetune`` (the same keys, readable back as a config file)."""
        text = yaml.safe_dump(self.effective_dict(), sort_keys=False)
        own = [f.name for f in dataclasses.fields(self.finetune.task_settings)]
        if not own:
            return text
        lines, in_finetune = text.splitlines(keepends=True), False
        for i, line in enumerate(lines):
            in_finetune = line.startswith("finetune:") or (in_finetune and line.startswith(" "))
            if in_finetune and line.startswith(f"  {own[0]}:"):
                lines.insert(i, f"  # the {self.finetune.task} task's own settings ({type(self.finetune.task_settings).__name__})\n")
                break
        return "".join(lines)


def _tasks_that(capability: str) -> str:
    return ", ".join(t.name for t in tasks.TASKS.values() if getattr(t, capability))


def trainer_settings(f: FinetuneConfig) -> dict:
    """The fine-tuning settings a task's ``run_fn`` reads (the Trainer's ``custom_config``): the
    shared training settings and the task's own, not the pipeline's (paths, gates, pushing), so
    changing those leaves the Trainer's cache valid."""
    names = list(TRAINER_SETTINGS) + tasks.get_task(f.task).trainer_setting_names(f)
    return {n: copy.deepcopy(getattr(f, n)) for n in names}


def tuner_settings(f: FinetuneConfig) -> dict:
    """The Tuner's ``custom_config``: the Trainer's settings, the recipe (whose grid is searched
    unless the user gave one) and the tuning section."""
    return {**trainer_settings(f), "recipe": f.recipe, TUNING_KEY: dataclasses.asdict(f.tuning)}


def search_space(settings: FinetuneConfig, tuning: TuningConfig, encoder_width: int | None = None) -> dict:
    """{"learning_rate": [...], "batch_size": [...]}: the user's lists, else the grid of the
    recipe (``auto``: by ``encoder_width``, else tiny's)."""
    name = settings.recipe if settings.recipe != "auto" else registry.recipe_for_width(encoder_width or 1)
    grid = registry.TUNING_GRIDS[name]
    return {"learning_rate": [float(v) for v in tuning.learning_rates] or grid["learning_rate"],
            "batch_size": [int(v) for v in tuning.batch_sizes] or grid["batch_size"]}


def settings_from(custom_config: dict | None) -> FinetuneConfig:
    """The typed settings a ``run_fn`` / ``preprocessing_fn`` reads back from its
    ``custom_config`` (keys that are neither shared nor the task's settings, e.g. ``encoder_dir``,
    ignored; settings not passed keep their defaults)."""
    data = dict(custom_config or {})
    config = FinetuneConfig(**{k: v for k, v in data.items()
                               if k in _FINETUNE_FIELDS and k not in ("task_settings", TUNING_KEY)})
    own = tasks.field_names(config.task_settings)
    for key, value in data.items():
        if key in own:
            setattr(config.task_settings, key, value)
    return config


# Keys BertTrainer adds to a run_fn's custom_config: the task data (a run_fn that reads it itself:
# retrieval's mining round) and the SavedModel dir of its optional teacher_model input.
TASK_DATA_DIR, TEACHER_MODEL_DIR = "task_data_dir", "teacher_model_dir"
# The Tuner's custom_config key of its TuningConfig (the rest: the Trainer's settings).
TUNING_KEY = "tuning"
# ... and the SavedModel dir of its optional warm_start_model input (the latest blessed model).
WARM_START_MODEL_DIR = "warm_start_model_dir"
# What every task's Trainer reads; each task adds its own settings (Task.trainer_setting_names).
TRAINER_SETTINGS = ("task", "num_classes", "label_names", "max_seq_length", "seed", "deterministic",
                    "batch_size", "learning_rate", "dropout", "epochs", "mixed_precision", "validation_percent",
                    "validation_pattern", "eval_every", "patience", "warm_start", "export_precision",
                    "export_length_bucket", "train_length_bucket", "slices")
_FINETUNE_FIELDS = frozenset(f.name for f in dataclasses.fields(FinetuneConfig))
SECTION_NAMES = {PretrainConfig: "pretrain", FinetuneConfig: "finetune", ServingConfig: "serving",
                 EmbedderConfig: "embedder", DistillConfig: "distill", ScoreConfig: "score", BeamConfig: "beam",
                 KubeflowConfig: "kubeflow"}


DERIVED_SLICES = ("length_bucket", "unknown_rate_bucket")  # models/slices.py computes them in the served graph


def _slice_checks(f: FinetuneConfig) -> list[tuple[bool, str]]:
    task = tasks.get_task(f.task)
    derived = [k for k in f.slices if k in DERIVED_SLICES]
    return [
        (not f.slices or not task.evaluates_by_retrieval,
         f"finetune.slices: the {f.task} task is evaluated by retrieval over its corpus, not by TFMA, which slices"),
        (not derived or task.derived_slices,
         f"finetune.slices: {derived} are derived by the served graph of sentiment, pair_classification and "
         f"multilabel models, not {f.task}'s; slice by a column of the data instead"),
        (f.min_slice_size >= 0 and (not f.min_slice_size or f.slices),
         "finetune.min_slice_size must be >= 0, and gates slices only when finetune.slices names some"),
        (not [k for k in f.slices if k not in DERIVED_SLICES] or f.input_format in ("csv", "tsv", "jsonl", "glue_tsv"),
         f"finetune.slices: columns of the data are read from csv, tsv, jsonl and glue_tsv rows, not "
         f"{f.input_format} (slice by {', '.join(DERIVED_SLICES)} instead)"),
        (all(str(k).strip() and str(k) not in ("text", "text_b", "label") for k in f.slices),
         f"finetune.slices must name feature keys other than the text and the label, not {list(f.slices)}"),
    ]


def _positive_numbers(values: list, kind: type) -> bool:
    try:
        return all(kind(float(v)) > 0 and (kind is float or float(v).is_integer()) for v in values)
    except (TypeError, ValueError):
        return False


def _check_choices(section: Any, where: str) -> None:
    """Every ``Literal[...]`` field holds one of its values; the error lists them."""
    for name, hint in get_type_hints(type(section)).items():
        if get_origin(hint) is Literal and getattr(section, name) not in get_args(hint):
            allowed = ", ".join(repr(a) if a == "" else str(a) for a in get_args(hint))
            raise ValueError(f"Invalid configuration: {where}.{name} must be one of {allowed}; "
                             f"got {getattr(section, name)!r}.")


def _absolute(path: str) -> str:
    """Local paths made absolute; URIs (gs://, s3://, hdfs://) kept as they are."""
    return path if "://" in path else os.path.abspath(path)


def _apply(obj: Any, data: dict, where: str) -> None:
    for key, value in data.items():
        if isinstance(obj, FinetuneConfig):
            if key == "task":
                continue  # resolved before the layers are applied (_layered)
            _check_task_key(obj, key)
        if key == "task_settings" or not hasattr(obj, key) or key.startswith("_"):
            known = ", ".join(_known_keys(obj))
            elsewhere = [f"{name}.{key}" for cls, name in SECTION_NAMES.items()
                         if key in _section_keys(cls) and f"{name}." != where]
            hint = f" It belongs under {' or '.join(elsewhere)}." if elsewhere else ""
            raise ValueError(f"Unknown config key '{where}{key}'.{hint} Known keys here: {known}.")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"Config key {where}{key} must be a mapping.")
            _apply(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, _coerce(value, current, f"{where}{key}"))


def _section_keys(cls) -> set[str]:
    names = {f.name for f in dataclasses.fields(cls)}
    return names | set(tasks.settings_owners()) if cls is FinetuneConfig else names


def _check_task_key(f: FinetuneConfig, key: str) -> None:
    """A setting of another task than ``finetune.task`` is an error naming its tasks."""
    if key not in _FINETUNE_FIELDS and not hasattr(f.task_settings, key) and key in tasks.settings_owners():
        raise ValueError(_not_a_setting(key, f.task))


def _known_keys(obj: Any) -> list[str]:
    names = [f.name for f in dataclasses.fields(obj) if f.name != "task_settings"]
    if isinstance(obj, FinetuneConfig):
        names += [f.name for f in dataclasses.fields(obj.task_settings)]
    return names


def _coerce(value: Any, current: Any, name: str) -> Any:
    """``value`` (from YAML or a flag's text) as the type of the key's default, read the same
    way from both: 5.7 is not an int, "nan" and "inf" are not numbers here, 2 is not a bool."""
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        elif isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise ValueError(f"Config key {name} expects true/false, got {value!r}.")
    if isinstance(current, list) and isinstance(value, str):
        return [v for v in value.split(",") if v]
    if isinstance(current, (int, float)) and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
        raise ValueError(f"Config key {name} expects {type(current).__name__}, got {value!r}.")
    try:
        if isinstance(current, int):  # 5, "5", 5.0 and "5.0" alike; 5.7 and "5.7" are refused, not 5
            number = float(value)
            if not number.is_integer():
                raise ValueError
            converted = int(value) if isinstance(value, int) or str(value).strip().lstrip("+-").isdigit() else int(number)
        else:
            converted = type(current)(value) if current is not None else value
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"Config key {name} expects {type(current).__name__}, got {value!r}."
        ) from None
    if isinstance(converted, float) and not math.isfinite(converted):
        raise ValueError(f"Config key {name} must be a finite number, got {value!r}.")
    return converted


def parse_override(text: str) -> dict:
    """``"pretrain.train_steps=200"`` -> ``{"pretrain": {"train_steps": "200"}}``."""
    if "=" not in text:
        raise ValueError(f"Override {text!r} must look like section.key=value.")
    path, value = text.split("=", 1)
    result: dict = {}
    node = result
    parts = path.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return result


DEMO_CONFIG = os.path.join(os.path.dirname(__file__), "configs", "demo.yaml")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML itself lets the last
    one silently win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first at line {seen[key] + 1}); keep one",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str) -> dict:
    """A YAML config file's mapping; a clear error for a missing, unreadable or malformed file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"Config file {path} is a directory; give a YAML file.")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader) or {}
    except yaml.MarkedYAMLError as e:  # one line: where, then what
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        context = (f" ({e.context} at line {e.context_mark.line + 1}, column {e.context_mark.column + 1})"
                   if e.context and e.context_mark and e.problem else "")
        raise ValueError(f"{where}: not valid YAML: {e.problem or e.context}{context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"Config file {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ValueError(f"Config file {path} must hold a mapping at the top level.")
    return data


def load_config(yaml_path: str | None = None, overrides: list[str] | tuple = (),
                demo: bool = False) -> ProjectConfig:
    """The one typed configuration of a run, resolved and validated once.

    Layers, later ones winning: the dataclasses' defaults <- ``configs/demo.yaml`` (``demo``)
    <- the task's defaults (model and pipeline name, fixed settings; with no
    ``finetune.data_dir``, the embedded demo data and the loader settings that read it) <- the
    YAML file <- ``section.key=value`` overrides. So a value the user set always wins, and the
    result is exactly what a run uses (``tfx-bert show-config`` prints it).
    """
    user = ([read_yaml(yaml_path)] if yaml_path else []) + [parse_override(text) for text in overrides]
    base = [read_yaml(DEMO_CONFIG)] if demo else []
    probe = _layered(base + user)  # where the user's layers put the task, work_dir and data
    config = _layered(base + [_input_defaults(probe)] + user)
    if config.pretrain.init_from:
        _check_init_from(config, user)
    if _user_sets(user, "train_steps") and not _user_sets(user, "epochs"):
        config.finetune.epochs = 0.0  # steps the user asked for win over a recipe's epochs
    _resolve_distill(config)
    _resolve_score(config)
    _resolve_precision(config)
    return config.validate()


def _resolve_precision(config: ProjectConfig) -> None:
    """``finetune.mixed_precision: auto`` -> the policy for the Trainer's resources, once."""
    if config.finetune.mixed_precision == "auto":
        config.finetune.mixed_precision = accelerators.precision_for(config.resources.trainer) or "float32"


def _resolve_distill(config: ProjectConfig) -> None:
    """The distillation settings that follow fine-tuning's when left at 0 / empty, resolved once."""
    d, f = config.distill, config.finetune
    d.train_steps = d.train_steps or f.train_steps
    d.learning_rate = d.learning_rate or f.learning_rate
    d.model_name = d.model_name or f"{f.model_name}-student"
    d.export_precision = d.export_precision or f.export_precision


def _resolve_score(config: ProjectConfig) -> None:
    """Batch scoring's names and output that follow fine-tuning's when left empty, resolved once."""
    s, f = config.score, config.finetune
    s.model_name = s.model_name or f.model_name
    s.pipeline_name = s.pipeline_name or f"{f.pipeline_name}-score"
    s.output = s.output or os.path.join(config.work_dir, "scores", f"{s.model_name}.{s.format}")


def distill_settings(config: ProjectConfig) -> dict:
    """The student Trainer's ``custom_config``: the fine-tuning settings its task's ``run_fn``
    reads, plus the distillation section (read back with ``distill_settings_from``)."""
    return {**trainer_settings(config.finetune), "distill": dataclasses.asdict(config.distill)}


def distill_settings_from(custom_config: dict | None) -> DistillConfig:
    """The typed distillation settings a student's ``run_fn`` reads back."""
    data = (custom_config or {}).get("distill")
    if not isinstance(data, dict):
        raise ValueError("This run_fn distils: its custom_config needs the distill section "
                         "(tfx_bert.config.distill_settings).")
    names = {f.name for f in dataclasses.fields(DistillConfig)}
    return DistillConfig(**{k: v for k, v in data.items() if k in names})


def _user_sets(user: list[dict], key: str) -> bool:
    return any(key in (layer.get("finetune") or {}) for layer in user)


def _layered(layers: list[dict]) -> ProjectConfig:
    """The layers applied in order, to a configuration whose ``finetune`` section is already the
    task the layers end on (its settings class decides which ``finetune`` keys exist)."""
    config = ProjectConfig()
    task = config.finetune.task
    for layer in layers:
        section = layer.get("finetune")
        if isinstance(section, dict) and "task" in section:
            task = section["task"]
    config.finetune = FinetuneConfig(task=str(task))
    for layer in layers:
        _apply(config, layer, "")
    return config


def _input_defaults(probe: ProjectConfig) -> dict:
    """The layer below the user's: the task's defaults (its data format's loader settings hold
    for the user's data too) and, where no data is configured, the embedded demo data's paths
    (pure: nothing is written; ``tfx-bert generate-data`` and the pipeline commands write it)."""
    from tfx_bert import demo_data

    task = tasks.get_task(probe.finetune.task)  # a task class by dotted path registers here
    paths = demo_data.demo_paths(probe.data_dir)
    data_dir = probe.finetune.data_dir or paths[task.demo.dataset]
    layer = {"finetune": {**recipe_defaults(probe), **task.config_defaults(data_dir, demo=not probe.finetune.data_dir)},
             "pretrain": continued_pretraining_defaults(probe) if probe.pretrain.init_from else {}}
    if not probe.pretrain.corpus_pattern:
        layer["pretrain"]["corpus_pattern"] = paths["corpus"]
    return layer


FROM_CHECKPOINT = "checkpoint"  # pretrain.model_size with init_from: the checkpoint's architecture
# The continued-pretraining recipe (pretrain.init_from): google-research/bert's README, "Pre-training
# with BERT": from an existing BERT checkpoint, a smaller learning rate than pretraining's 1e-4
# ("e.g., 2e-5"), sequences of 128 with 20 predictions each. Gururangan et al. 2020 ("Don't Stop
# Pretraining", domain-adaptive pretraining): 12.5k steps, 6% of them warm-up.
CONTINUED_PRETRAINING = {"learning_rate": 2e-5, "train_steps": 12_500, "max_seq_length": 128,
                         "max_predictions_per_seq": 20}
CONTINUED_WARMUP_SHARE = 0.06


def continued_pretraining_defaults(probe: ProjectConfig) -> dict:
    """``pretrain.init_from``'s layer below the user's: the checkpoint's vocabulary size and casing
    (where it says), its architecture, and the continued-pretraining recipe."""
    from tfx_bert import checkpoint_info

    info = checkpoint_info.read_checkpoint_info(probe.pretrain.init_from)
    steps = probe.pretrain.train_steps if probe.pretrain.train_steps != PretrainConfig.train_steps \
        else CONTINUED_PRETRAINING["train_steps"]
    layer = {**CONTINUED_PRETRAINING, "model_size": FROM_CHECKPOINT, "vocab_size": info.vocab_size,
             "max_seq_length": min(CONTINUED_PRETRAINING["max_seq_length"], info.max_positions),
             "warmup_steps": max(1, round(CONTINUED_WARMUP_SHARE * steps))}
    if info.lower_case is not None:
        layer["lower_case"] = info.lower_case
    return layer


def _check_init_from(config: ProjectConfig, user: list[dict]) -> None:
    """A setting the user gave that contradicts ``pretrain.init_from``'s checkpoint is an error
    naming both values (the checkpoint decides its architecture, vocabulary and casing)."""
    from tfx_bert import checkpoint_info

    p = config.pretrain
    info = checkpoint_info.read_checkpoint_info(p.init_from)
    given = {k for layer in user for k in (layer.get("pretrain") or {})}
    where = f"pretrain.init_from={p.init_from} ({info.config_file})"
    if "model_size" in given and p.model_size != FROM_CHECKPOINT:
        size = registry.get_model_size(p.model_size)
        if (size.num_layers, size.hidden_dim, size.num_heads, size.intermediate_dim) != (
                info.num_layers, info.hidden_dim, info.num_heads, info.intermediate_dim):
            raise ValueError(f"Invalid configuration: pretrain.model_size={p.model_size} ({size.num_layers} layers x "
                             f"{size.hidden_dim} wide, {size.num_heads} heads, intermediate {size.intermediate_dim}) "
                             f"contradicts {where}: {info.shape()}. Leave pretrain.model_size out (the checkpoint "
                             "decides the architecture).")
    if "vocab_size" in given and p.vocab_size != info.vocab_size:
        raise ValueError(f"Invalid configuration: pretrain.vocab_size={p.vocab_size} contradicts {where}: a vocabulary "
                         f"of {info.vocab_size} tokens. Leave pretrain.vocab_size out (the checkpoint's vocabulary is kept).")
    if "vocab_path" in given and p.vocab_path:
        raise ValueError(f"Invalid configuration: pretrain.vocab_path={p.vocab_path} contradicts {where}: continued "
                         "pretraining keeps the checkpoint's own vocabulary (its embeddings index it).")
    if info.lower_case is None and "lower_case" not in given:
        raise ValueError(f"Invalid configuration: {where} does not say whether it is cased (no tokenizer "
                         "configuration): set pretrain.lower_case (true for an uncased model, false for a cased one).")
    if info.lower_case is not None and p.lower_case != info.lower_case:
        raise ValueError(f"Invalid configuration: pretrain.lower_case={str(p.lower_case).lower()} contradicts {where}: "
                         f"{'uncased' if info.lower_case else 'cased'} (lower_case "
                         f"{str(info.lower_case).lower()}). Leave pretrain.lower_case out.")
    longest = max(p.max_seq_length, p.phase2_max_seq_length)
    if longest > info.max_positions:
        raise ValueError(f"Invalid configuration: pretrain.max_seq_length={longest} contradicts {where}: "
                         f"{info.max_positions} positions.")


def recipe_defaults(probe: ProjectConfig) -> dict:
    """The fine-tuning recipe's settings (``finetune.recipe``; ``auto``: by the width of
    ``finetune.encoder_uri``, read from its configuration file, or of ``pretrain.model_size``
    when fine-tuning starts from this project's pretraining)."""
    name = probe.finetune.recipe
    if name == "auto":
        uri = probe.finetune.encoder_uri
        if uri or probe.pretrain.init_from:  # an encoder given, or pretraining that continues a checkpoint
            width = registry.encoder_width(uri or probe.pretrain.init_from)
        else:
            width = registry.get_model_size(probe.pretrain.model_size).hidden_dim
        if not width:  # not a silent guess: the run may go on (the encoder check names the problem)
            import logging

            logging.getLogger("tfx_bert").warning(
                "finetune.recipe auto: the width of %s cannot be read here; using the tiny recipe's defaults "
                "(set finetune.recipe to tiny, compact or bert)", uri)
        name = registry.recipe_for_width(width) if width else "tiny"
    return dict(registry.RECIPES[name])


def demo_config(overrides: list[str] | tuple = ()) -> ProjectConfig:
    """The tiny configuration ``make demo`` and the end-to-end tests run (configs/demo.yaml)."""
    return load_config(overrides=overrides, demo=True)
