"""Dense retrieval: a dual encoder trained contrastively; a corpus indexed into the vector store."""
from __future__ import annotations

import dataclasses

from tfx_bert import signatures
from tfx_bert.serving import task_clients
from tfx_bert.task_settings import NegativeSettings, PoolingSettings, VectorIndexSettings, query_length_check
from tfx_bert.tasks import DemoData, Task

BEIR = (("input_format", "beir"), ("train_pattern", "qrels/train.tsv"), ("eval_pattern", "qrels/dev.tsv"))


@dataclasses.dataclass
class RetrievalSettings(PoolingSettings, VectorIndexSettings, NegativeSettings):
    max_query_length: int = 16  # query pieces
    # A second round after train_steps: the trained model ranks the corpus for each training query,
    # negatives come from that ranking (negative_rank_min/max; below the weakest positive's cosine
    # minus mining_margin, -inf: no filter), and mining_steps more steps train on them (ANCE-style).
    mining_steps: int = 0
    mining_margin: float = float("-inf")
    temperature: float = 0.05  # the contrastive softmax's temperature on cosines
    # A fine-tuned re-ranker (a rerank Trainer's model, <uri>/Format-Serving with its Keras model
    # beside it, local or gs://) distilled into the dual encoder: its score margins between each
    # query's positive and hard negatives, matched by the dual encoder's (Margin-MSE, Hofstaetter
    # et al. 2020), weight cross_encoder_alpha; 1 - cross_encoder_alpha: the contrastive loss.
    # Imported into MLMD (lineage). Empty: contrastive loss only.
    cross_encoder_uri: str = ""
    cross_encoder_alpha: float = 0.5
    shared_towers: bool = True  # one encoder for queries and documents, or two
    retrieval_eval_dir: str = ""  # BEIR-layout eval set; empty -> the task data
    retrieval_eval_qrels: str = ""  # its qrels file; empty -> eval_pattern
    retrieval_gate_metric: str = "ndcg@10"  # gates the blessing (>= accuracy_threshold)

    PIPELINE_ONLY = VectorIndexSettings.PIPELINE_ONLY + (
        "retrieval_eval_dir", "retrieval_eval_qrels", "retrieval_gate_metric")

    def checks(self, finetune) -> list[tuple[bool, str]]:
        return super().checks(finetune) + [
            query_length_check(self.max_query_length, finetune, "the passage"),
            (self.temperature > 0, "finetune.temperature must be > 0"),
            (not self.cross_encoder_uri or (self.num_negatives >= 1 and self.mining_steps <= 0),
             "finetune.cross_encoder_uri: Margin-MSE needs hard negatives (num_negatives >= 1) and no mining round "
             "(mining_steps 0)"),
            (0 < self.cross_encoder_alpha <= 1, "finetune.cross_encoder_alpha must be in (0, 1]"),
            (self.mining_steps <= 0 or (finetune.input_format == "beir" and self.num_negatives >= 1),
             "finetune.mining_steps mines from a BEIR corpus: it needs input_format beir and num_negatives >= 1"),
        ]


class RetrievalTask(Task):
    name = "retrieval"
    description = "Dense retrieval: dual encoder, in-batch + hard negatives contrastive loss; corpus -> vector store"
    module = "tfx_bert_app.models.retrieval"
    label_settings = ()  # what the outputs mean (a warm start keeps them)
    signature = signatures.RETRIEVAL
    model_kind = "dual encoder"  # names the teacher in a student's progress line
    Settings = RetrievalSettings
    # BEIR's layout; the corpus beside the qrels is the one indexed after a blessing.
    data_defaults = BEIR + (("index_corpus", "{data}/corpus.jsonl"), ("index_corpus_format", "beir"))
    demo = DemoData("retrieval", "write_retrieval_dataset", "qrels/dev.tsv",
                    (("train_steps", 600), ("learning_rate", 1e-3), ("accuracy_threshold", 0.1)))
    transform_settings = ("max_seq_length", "max_query_length", "num_negatives")
    evaluates_by_retrieval = True

    def trainer_setting_names(self, settings) -> list[str]:
        extra = ["train_pattern"] if self.reads_task_data_in_trainer(settings) else []
        return super().trainer_setting_names(settings) + extra

    def reads_task_data_in_trainer(self, settings) -> bool:
        """The mining round ranks the training queries' corpus: the Trainer reads the task data."""
        return settings.mining_steps > 0

    def example_gen_args(self, finetune, negative_model: str = "") -> dict:
        return finetune.task_settings.example_gen_args(finetune, negative_model)

    def after_training(self, data, trained, model, tokenizer, eval_dataset, metrics: dict) -> dict:
        """``finetune.mining_steps``: a second round on negatives the model mined itself (the
        teacher's run only; ``models/retrieval_mining.py``)."""
        if not self.reads_task_data_in_trainer(data.settings) or data.distill is not None:
            return metrics
        from tfx_bert_app.models import retrieval, retrieval_mining

        return retrieval_mining.train_on_mined_negatives(data.fn_args, data.settings, trained,
                                                         retrieval.towers_of(model), tokenizer, eval_dataset)

    def decode(self, inputs: dict, outputs: dict) -> list[dict]:
        return task_clients.decode_scores(inputs, outputs)
