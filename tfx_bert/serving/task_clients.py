"""Task-level client: a task's raw inputs -> its ``serving_default`` request -> task output.

Which inputs a request carries comes from the task's signature (``tfx_bert/signatures.py``, the
same constants the export uses), so a pair task always sends both texts. Decoding turns the
response tensors into plain dicts (JSON lines in ``tfx-bert predict``).
"""
from __future__ import annotations

import numpy as np

from tfx_bert import signatures as sig
from tfx_bert import tasks


def _strings(values) -> np.ndarray:
    return np.array(list(values), dtype=object)


def request_inputs(task: tasks.Task, texts: list[str], text_b: list[str] | None = None,
                   context: str | None = None, query: str | None = None) -> dict[str, np.ndarray]:
    """The ``serving_default`` inputs of ``task`` for ``texts`` (questions for qa, passages for
    retrieval and rerank); a missing part is a ValueError saying which option gives it."""
    inputs = {}
    for key in task.signature.inputs:
        if key == sig.TEXT:
            inputs[key] = _strings(texts)
        elif key == sig.QUESTION:
            inputs[key] = _strings(texts)
        elif key == sig.TEXT_B:
            if not text_b or len(text_b) != len(texts):
                raise ValueError(f"--task {task.name} takes text pairs: give one --text-b per text "
                                 f"({len(texts)} texts, {len(text_b or [])} --text-b).")
            inputs[key] = _strings(text_b)
        elif key == sig.CONTEXT:
            if not context:
                raise ValueError(f"--task {task.name} needs --context TEXT (or --context-file PATH): the passage "
                                 "the questions are answered from.")
            inputs[key] = _strings([context] * len(texts))
        elif key == sig.QUERY:
            if not query:
                raise ValueError(f"--task {task.name} needs --query TEXT; the texts are the passages scored for it.")
            inputs[key] = _strings([query] * len(texts))
        else:  # a signature input this client does not know how to fill
            raise ValueError(f"task {task.name}'s signature takes {key!r}, which tfx-bert predict cannot fill.")
    return inputs


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _windows_cut(outputs: dict, i: int) -> dict:
    """A long text's windows the model did not read (``finetune.max_windows``), where the model
    reports them."""
    return {sig.WINDOWS_CUT: int(outputs[sig.WINDOWS_CUT][i])} if sig.WINDOWS_CUT in outputs else {}


def decode_classes(inputs: dict, outputs: dict) -> list[dict]:
    rows = []
    for i, (cls, probs) in enumerate(zip(outputs[sig.CLASS_IDS], outputs[sig.PROBABILITIES])):
        row = {"text": _text(inputs[sig.TEXT][i])}
        if sig.TEXT_B in inputs:
            row["text_b"] = _text(inputs[sig.TEXT_B][i])
        rows.append({**row, "class_id": int(cls), "probabilities": [float(p) for p in probs], **_windows_cut(outputs, i)})
    return rows


def decode_multilabel(inputs: dict, outputs: dict) -> list[dict]:
    return [{"text": _text(text), "labels": [_text(n) for n in names if _text(n)],
             "probabilities": [float(p) for p in probs], **_windows_cut(outputs, i)}
            for i, (text, names, probs) in enumerate(zip(inputs[sig.TEXT], outputs[sig.LABELS],
                                                         outputs[sig.PROBABILITIES]))]


def decode_entities(inputs: dict, outputs: dict) -> list[dict]:
    """Offsets are Unicode characters of the input, end exclusive."""
    results = []
    for i, text in enumerate(inputs[sig.TEXT]):
        entities = [{"type": _text(t), "start": int(s), "end": int(e), "text": _text(x)}
                    for t, s, e, x in zip(outputs[sig.ENTITY_TYPES][i], outputs[sig.ENTITY_STARTS][i],
                                          outputs[sig.ENTITY_ENDS][i], outputs[sig.ENTITY_TEXTS][i]) if s >= 0]
        results.append({"text": _text(text), "entities": entities, **_windows_cut(outputs, i)})
    return results


def decode_answers(inputs: dict, outputs: dict) -> list[dict]:
    """An empty answer (start -1) means the model finds none (SQuAD 2.0)."""
    results = []
    for i, question in enumerate(inputs[sig.QUESTION]):
        nbest = [{"text": _text(t), "start": int(s), "end": int(e), "score": float(v), "probability": float(p)}
                 for t, s, e, v, p in zip(outputs[sig.NBEST_TEXTS][i], outputs[sig.NBEST_STARTS][i],
                                          outputs[sig.NBEST_ENDS][i], outputs[sig.NBEST_SCORES][i],
                                          outputs[sig.NBEST_PROBABILITIES][i]) if s >= 0]
        results.append({"question": _text(question), "answer": _text(outputs[sig.ANSWER_TEXT][i]),
                        "start": int(outputs[sig.ANSWER_START][i]), "end": int(outputs[sig.ANSWER_END][i]),
                        "score": float(outputs[sig.SCORE][i]),
                        "no_answer_score": float(outputs[sig.NO_ANSWER_SCORE][i]), "nbest": nbest})
    return results


def decode_similarity(inputs: dict, outputs: dict) -> list[dict]:
    results = []
    for i, (a, b) in enumerate(zip(inputs[sig.TEXT], inputs[sig.TEXT_B])):
        row = {"text": _text(a), "text_b": _text(b), sig.SIMILARITY: float(outputs[sig.SIMILARITY][i])}
        if sig.PROBABILITIES in outputs:
            row["class_id"] = int(outputs[sig.CLASS_IDS][i])
            row["probabilities"] = [float(p) for p in outputs[sig.PROBABILITIES][i]]
        results.append(row)
    return results


def decode_scores(inputs: dict, outputs: dict) -> list[dict]:
    """Passages scored for one query, best first."""
    rows = [{"query": _text(q), "text": _text(t), "score": float(s)}
            for q, t, s in zip(inputs[sig.QUERY], inputs[sig.TEXT], outputs[sig.SCORE])]
    return sorted(rows, key=lambda r: -r["score"])


def predict(client, task_name: str, model_name: str, texts: list[str], text_b: list[str] | None = None,
            context: str | None = None, query: str | None = None, version_label: str | None = None) -> list[dict]:
    """One ``serving_default`` request of ``task_name``'s model through ``client`` (a
    ``ServingClient``), decoded into one dict per input."""
    task = tasks.get_task(task_name)
    inputs = request_inputs(task, texts, text_b, context, query)
    outputs = client.predict(model_name, inputs, version_label=version_label)
    return task.decode(inputs, outputs)


def embed(client, model_name: str, texts: list[str], signature_name: str = sig.EMBED) -> list[dict]:
    """Similarity and retrieval models' ``embed`` (documents) or ``embed_query`` signature."""
    vectors = client.predict(model_name, {sig.TEXT: _strings(texts)}, signature_name=signature_name)[sig.EMBEDDING]
    return [{"text": t, "embedding": [float(x) for x in v]} for t, v in zip(texts, vectors)]
