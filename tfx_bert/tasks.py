"""The task registry and the ``Task`` base class: what a fine-tuning task is, in one place.

A task is one class (``models/tasks/<module>.py``) that owns everything the rest of the project
asks of it, as Model Garden's ``base_task.Task`` does:

* its **settings**: a typed ``TaskSettings`` dataclass chosen by ``finetune.task`` (a one-of),
  with the rules that check them (``TaskSettings.checks``); ``finetune.KEY`` reads and writes them;
* its **data**: the embedded demo data (``demo``), the loader settings of the task's own data
  format (``data_defaults``: they hold for the user's data too) and the ExampleGen's arguments
  (``example_gen_args``);
* its part in the **one fine-tuning loop** (``models/finetuning.py``'s ``preprocessing_fn``,
  ``run_fn`` and ``distill_run_fn``): ``preprocess``, ``build_model``, ``build_inputs``,
  ``build_losses``, ``build_metrics``, ``export``, ``distillation_loss``, ... and
  ``eval_config`` (TFMA), by default the functions of those names in its model code (``module``);
* its **gates** (``evaluates_by_retrieval``, ``zero_shot_gated``) and capabilities
  (``feeds_one_sequence``, ``reads_transfer_text``, ``distillable``);
* its **serving contract** (``signature``) and the client's ``decode`` of a response.

Other code asks the task; it never compares task names. Tasks register by dotted path in
``BUILT_IN`` (imported when first asked for: task classes import no TensorFlow) or at run time
with ``register``. Adding a task is one class and, for a built-in one, one line below.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, ClassVar, Iterator, Mapping

from tfx_bert import signatures

DEFAULT_TASK = "sentiment"
DEFAULT_EMBEDDING_TASK = "similarity"  # whose model `tfx-bert retrieve` embeds queries with by default


@dataclasses.dataclass(frozen=True)
class DemoData:
    """The embedded data a task runs on when no ``finetune.data_dir`` is set.

    ``dataset``: its folder under ``<work_dir>/data`` (tasks may share one); ``writer``: the
    ``tfx_bert.demo_data`` function that writes it (its name), or any function of the folder;
    ``marker``: the file whose presence means it is
    written; ``settings``: (finetune key, value) pairs that read it ("{data}": its path)."""

    dataset: str
    writer: Any
    marker: str
    settings: tuple = ()


@dataclasses.dataclass
class TaskSettings:
    """A task's own settings (``finetune.KEY`` in YAML and flags). Subclasses add typed fields
    and the rules that check them."""

    def checks(self, finetune) -> list[tuple[bool, str]]:
        """(ok, message) rules over these settings and the shared ``finetune`` ones."""
        return []

    # Settings the pipeline reads (indexer, evaluator), not the Trainer: changing them leaves the
    # Trainer's cache valid.
    PIPELINE_ONLY: ClassVar[tuple] = ()


class Task:
    """What a fine-tuning task plugs into the configuration, the pipeline, the Trainer, serving
    and the client. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    description: ClassVar[str]
    module: ClassVar[str]  # dotted path of the model code whose functions the loop's hooks call
    signature: ClassVar[signatures.Signature]
    Settings: ClassVar[type] = TaskSettings
    model_kind: ClassVar[str] = "model"  # what the model is ("classifier"), for progress lines
    demo: ClassVar[DemoData]
    data_defaults: ClassVar[tuple] = ()  # (finetune key, value): the task's own data format
    transform_settings: ClassVar[tuple] = ("max_seq_length",)  # the settings preprocessing_fn reads
    distillable: ClassVar[bool] = True  # has a distillation_loss: a student stage
    feeds_one_sequence: ClassVar[bool] = False  # one sequence per example: distill.hidden_weight works
    reads_transfer_text: ClassVar[bool] = False  # unlabelled lines can stand for examples (distill.transfer_pattern)
    evaluates_by_retrieval: ClassVar[bool] = False  # gated by search over a corpus, not by TFMA
    label_names_per_class: ClassVar[bool] = True  # finetune.label_names names each of num_classes classes
    # Its served graph computes the derived slice features (models/slices.py; finetune.slices).
    derived_slices: ClassVar[bool] = False
    # The settings that say what the model's outputs mean: a blessed model warm-starts a run
    # (finetune.warm_start) only where they are unchanged.
    label_settings: ClassVar[tuple] = ("num_classes", "label_names")

    # Model code: what the one fine-tuning loop (models/finetuning.py) asks of the task ---------
    # Each hook below calls the function of the same name in ``module`` (the task's model code,
    # which imports TensorFlow); a task may instead override the method itself (a task defined
    # in one class, e.g. a plugin). Arguments: ``settings`` is the typed FinetuneConfig,
    # ``data`` a ``models.finetuning.TrainerData`` (fn_args, Transform output, settings).
    preprocessing_fn: ClassVar[str] = "tfx_bert_app.models.finetuning.preprocessing_fn"
    run_fn: ClassVar[str] = "tfx_bert_app.models.finetuning.run_fn"
    distill_run_fn: ClassVar[str] = "tfx_bert_app.models.finetuning.distill_run_fn"
    tuner_fn: ClassVar[str] = "tfx_bert_app.models.tuning.tuner_fn"  # finetune.tuning: TFX's Tuner

    def label_set(self, settings) -> dict:
        """``label_settings`` of ``settings``: what a warm start's model must share with the run."""
        return {name: getattr(settings, name) for name in self.label_settings}

    def load(self):
        """The task's model module (imports TF and TFMA: call only when building or running)."""
        return importlib.import_module(self.module)

    def _model_code(self, hook: str, *args, **kwargs):
        return getattr(self.load(), hook)(*args, **kwargs)

    def preprocess(self, inputs: dict, settings, tokenizer) -> dict:
        """Transform: raw features -> the model's features (``preprocessing_fn``)."""
        return self._model_code("preprocess", inputs, settings, tokenizer)

    def build_model(self, encoder_dir: str, settings, tokenizer):
        """The Keras model the Trainer fits and exports, on the encoder in ``encoder_dir``."""
        return self._model_code("build_model", encoder_dir, settings, tokenizer)

    def build_inputs(self, data, files: list, training: bool):
        """The (features, labels) dataset of Transform's output ``files`` (repeated when training)."""
        return self._model_code("build_inputs", data, files, training)

    def build_losses(self, model, settings):
        return self._model_code("build_losses", model, settings)

    def build_metrics(self, settings) -> list:
        return self._model_code("build_metrics", settings)

    def describe(self, settings, encoder_dir: str) -> str:
        """What the Trainer trains, for its progress line."""
        return self._model_code("describe", settings, encoder_dir)

    def training_model(self, data, model, tokenizer):
        """(the model ``fit`` trains, a note for the progress line): ``model`` itself unless the task
        trains it inside another (a teacher's extra loss)."""
        hook = getattr(self.load(), "training_model", None)
        return hook(data, model, tokenizer) if hook else (model, "")

    def stacked_sequences(self, settings) -> dict:
        """{key suffix: sequences per row} of the model inputs whose rows hold sequences side by
        side that the model splits by count, or one sequence not ``max_seq_length`` wide (a
        retrieval query): training batches cut them too (``models/length_buckets.py``)."""
        hook = getattr(self.load(), "stacked_sequences", None)
        return hook(settings) if hook else {}

    def count_labels(self, data, files) -> list[int]:
        """Examples (NER: words) of each class id (tag) in ``files`` of the Transform output, for
        ``finetune.class_weights: balanced``; only tasks that have class weights count them."""
        return self._model_code("count_labels", data, files)

    def after_training(self, data, trained, model, tokenizer, eval_dataset, metrics: dict) -> dict:
        """Work after ``fit`` (a mining round, a threshold tuned on held-out data): the metrics."""
        hook = getattr(self.load(), "after_training", None)
        return hook(data, trained, model, tokenizer, eval_dataset, metrics) if hook else metrics

    def export(self, model, data, tokenizer, precision: str) -> None:
        """The served SavedModel in ``data.fn_args.serving_model_dir``: raw text in."""
        self._model_code("export", model, data, tokenizer, precision)

    def distillation_loss(self, settings, temperature: float):
        """The ``keras.distillation`` loss a student learns this task's teacher with."""
        return self._model_code("distillation_loss", settings, temperature)

    def wrap_teacher(self, teacher):
        """The teacher as the Distiller sees it (unchanged unless the task says otherwise)."""
        hook = getattr(self.load(), "wrap_teacher", None)
        return hook(teacher) if hook else teacher

    def eval_config(self, settings):
        """The TFMA EvalConfig that gates this task's model."""
        return self._model_code("eval_config", settings)

    @property
    def reference(self) -> str:
        """How another process names this task in ``finetune.task``: a built-in task's name, or
        ``module:Class`` for a task defined elsewhere."""
        path = f"{type(self).__module__}:{type(self).__qualname__}"
        return self.name if BUILT_IN.get(self.name) == path else path

    # Configuration --------------------------------------------------------------------------
    def config_defaults(self, data_dir: str, demo: bool) -> dict:
        """The task's layer of ``finetune`` settings, below the user's: names, its data format
        (``data_defaults``) and, with ``demo`` (no data configured), the embedded data's loader
        settings; "{data}" becomes ``data_dir``."""
        pairs = self.data_defaults + (self.demo.settings if demo else ())
        layer = {"model_name": self.name, "pipeline_name": f"tfx-bert-{self.name}"}
        layer.update({k: v.format(data=data_dir) if isinstance(v, str) else v for k, v in pairs})
        if demo:
            layer["data_dir"] = data_dir
        return layer

    def checks(self, finetune) -> list[tuple[bool, str]]:
        """(ok, message) rules of this task over the ``finetune`` section (its settings' own and
        the shared ones it reads)."""
        return [(not finetune.label_names or len(finetune.label_names) == finetune.num_classes
                 or not self.label_names_per_class, "finetune.label_names must have finetune.num_classes entries"),
                *finetune.task_settings.checks(finetune)]

    def trainer_setting_names(self, settings) -> list[str]:
        """The task's settings its ``run_fn`` reads (beyond the shared ones)."""
        return [f.name for f in dataclasses.fields(self.Settings) if f.name not in self.Settings.PIPELINE_ONLY]

    # Pipeline -------------------------------------------------------------------------------
    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        """The TaskExampleGen's arguments for this task's data (besides paths and ``strict``)."""
        f = finetune
        return dict(input_format=f.input_format, text_field=f.text_field, text_b_field=f.text_b_field,
                    label_field=f.label_field, label_names=list(f.label_names), num_classes=f.num_classes,
                    label_dtype="int", label_delimiter="|")

    def reads_task_data_in_trainer(self, settings) -> bool:
        """Whether the Trainer reads the task's raw data itself (a mining round)."""
        return False

    def zero_shot_gated(self, settings) -> bool:
        """Whether the blessing must also beat the pretrained encoder's zero-shot embeddings."""
        return False

    # Serving --------------------------------------------------------------------------------
    def with_second_text(self) -> "Task":
        """The task a request with a second text per input is for (a single-text task's pair form)."""
        return self

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        """A ``serving_default`` response -> one plain dict per input (the client's output)."""
        raise NotImplementedError(f"task {self.name} has no client decoding")


# name -> "module:Class" of the built-in tasks; models/tasks/ holds them.
BUILT_IN = {
    "sentiment": "tfx_bert_app.models.tasks.classification:SentimentTask",
    "pair_classification": "tfx_bert_app.models.tasks.classification:PairClassificationTask",
    "multilabel": "tfx_bert_app.models.tasks.multilabel:MultilabelTask",
    "ner": "tfx_bert_app.models.tasks.ner:NerTask",
    "qa": "tfx_bert_app.models.tasks.qa:QaTask",
    "similarity": "tfx_bert_app.models.tasks.similarity:SimilarityTask",
    "nli": "tfx_bert_app.models.tasks.similarity:NliTask",
    "retrieval": "tfx_bert_app.models.tasks.retrieval:RetrievalTask",
    "rerank": "tfx_bert_app.models.tasks.rerank:RerankTask",
}


class _Registry(Mapping):
    """name -> Task instance; built-in tasks are imported on first use."""

    def __init__(self):
        self._tasks: dict[str, Task] = {}
        self._loaded = False

    def _load(self) -> dict[str, Task]:
        if not self._loaded:
            self._loaded = True
            for name, path in BUILT_IN.items():
                module, cls = path.split(":")
                task = getattr(importlib.import_module(module), cls)()
                if task.name != name:
                    raise ValueError(f"{path} registers as {task.name!r}, not {name!r}")
                self._tasks.setdefault(name, task)
        return self._tasks

    def __getitem__(self, name: str) -> Task:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def register(self, task: Task) -> Task:
        self._load()[task.name] = task
        return task

    def unregister(self, name: str) -> None:
        self._load().pop(name, None)


TASKS = _Registry()


def register(task_cls: type) -> type:
    """Registers a task class (usable as a decorator); a test or a plugin adds a task this way."""
    TASKS.register(task_cls())
    return task_cls


def get_task(name: str) -> Task:
    """The registered task ``name``, or the task class at the dotted path ``package.module:Class``
    (a task defined outside this project, as TFX takes ``run_fn``: imported, then registered)."""
    if name in TASKS:
        return TASKS[name]
    if ":" in name:
        module, _, cls = name.partition(":")
        try:
            task_cls = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"Task {name!r}: cannot import {cls} from {module} ({e}).") from None
        if not (isinstance(task_cls, type) and issubclass(task_cls, Task)):
            raise ValueError(f"Task {name!r} is not a subclass of tfx_bert.tasks.Task.")
        return TASKS.register(task_cls())
    raise ValueError(f"Unknown task {name!r}; known tasks: {', '.join(TASKS)} (or a task class as "
                     "package.module:Class).")


def demo_datasets() -> dict[str, DemoData]:
    """dataset folder -> its DemoData, over every registered task (shared folders once)."""
    found: dict[str, DemoData] = {}
    for task in TASKS.values():
        found.setdefault(task.demo.dataset, task.demo)
    return found


def settings_owners() -> dict[str, tuple[str, ...]]:
    """{task setting: the tasks whose settings class has it}."""
    owners: dict[str, list[str]] = {}
    for task in TASKS.values():
        for field in dataclasses.fields(task.Settings):
            owners.setdefault(field.name, []).append(task.name)
    return {k: tuple(v) for k, v in owners.items()}


def field_names(cls: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}
