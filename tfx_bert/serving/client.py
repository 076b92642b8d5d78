"""A client for TF Serving's gRPC API (``tensorflow_serving.apis``): raw text in, outputs out.

Works against TF Serving itself or the development server in ``server.py``.
"""
from __future__ import annotations

import time

import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfx_bert import signatures as sig
from tfx_bert.serving import task_clients, tensors


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def make_channel(target: str, root_cert: str | None = None, client_cert: str | None = None,
                 client_key: str | None = None, server_name: str | None = None) -> grpc.Channel:
    """A gRPC channel: TLS when ``root_cert`` (PEM path) is given, with a client certificate
    for mutual TLS when ``client_cert``/``client_key`` are; plaintext otherwise."""
    if not root_cert and not client_cert:
        return grpc.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(root_cert), private_key=_read(client_key), certificate_chain=_read(client_cert))
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(target, credentials, options=options)


class ServingClient:
    """Calls TF Serving's gRPC API; per-call ``timeout``, retries on UNAVAILABLE with backoff,
    optional TLS (``root_cert``; ``client_cert`` + ``client_key`` for mutual TLS)."""

    def __init__(self, target: str, timeout: float = 10.0, retries: int = 3, root_cert: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None, server_name: str | None = None):
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self._channel = make_channel(target, root_cert, client_cert, client_key, server_name)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(0.2 * 2**attempt)

    def wait_until_available(self, model_name: str, deadline_s: float = 60.0) -> int:
        """Waits for the model to be AVAILABLE; returns its version."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        end = time.time() + deadline_s
        while True:
            try:
                response = self._models.GetModelStatus(request, timeout=self.timeout)
                for status in response.model_version_status:
                    if status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE:
                        return status.version
            except grpc.RpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND):
                    raise
            if time.time() > end:
                raise TimeoutError(f"Model {model_name} not available at {self.target} after {deadline_s}s")
            time.sleep(0.25)

    def predict(self, model_name: str, inputs: dict, signature_name: str = "serving_default",
                version: int | None = None, version_label: str | None = None) -> dict[str, np.ndarray]:
        """Sends ``inputs`` (name -> array-like) and returns the outputs as numpy arrays."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        if version_label:
            request.model_spec.version_label = version_label
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tensors.to_proto(value))
        response = self._call(self._predict.Predict, request)
        return {key: tensors.to_array(proto) for key, proto in response.outputs.items()}

    def classify(self, model_name: str, examples: list[dict], signature_name: str = "classification",
                 version: int | None = None) -> list[list[tuple[str, float]]]:
        """``PredictionService.Classify`` on tf.Examples built from {feature: str} dicts;
        returns (label, score) pairs per example."""
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        for features in examples:
            example = request.input.example_list.examples.add()
            for key, value in features.items():
                example.features.feature[key].bytes_list.value.append(value.encode())
        response = self._call(self._predict.Classify, request)
        return [[(c.label, c.score) for c in row.classes] for row in response.result.classifications]

    def classify_texts(self, model_name: str, texts: list[str], version_label: str | None = None,
                       texts_b: list[str] | None = None) -> list[dict]:
        """Classification: text (and, for pair models, ``texts_b``) -> {"text", ["text_b"],
        "class_id", "probabilities"} per input."""
        inputs = {sig.TEXT: np.array(texts, dtype=object)}
        if texts_b:
            if len(texts_b) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(texts_b)} second texts; give them in pairs.")
            inputs[sig.TEXT_B] = np.array(texts_b, dtype=object)
        return task_clients.decode_classes(inputs, self.predict(model_name, inputs, version_label=version_label))

    def extract_entities(self, model_name: str, texts: list[str]) -> list[dict]:
        """NER: text -> {"text", "entities": [{"type", "start", "end", "text"}]} per input;
        offsets are Unicode characters of the input, end exclusive."""
        inputs = {sig.TEXT: np.array(texts, dtype=object)}
        return task_clients.decode_entities(inputs, self.predict(model_name, inputs))

    def answer_questions(self, model_name: str, questions: list[str], contexts: list[str]) -> list[dict]:
        """Extractive QA: (question, context) -> {"question", "answer", "start", "end", "score",
        "no_answer_score", "nbest": [{"text", "start", "end", "score", "probability"}]}; offsets
        are Unicode characters of the context, end exclusive; an empty answer (start -1) means
        the model finds none (SQuAD 2.0)."""
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts; give one context per question.")
        inputs = {sig.QUESTION: np.array(questions, dtype=object), sig.CONTEXT: np.array(contexts, dtype=object)}
        return task_clients.decode_answers(inputs, self.predict(model_name, inputs))

    def embed(self, model_name: str, texts: list[str], signature_name: str = "embed") -> np.ndarray:
        """Similarity and retrieval models: texts -> L2-normalised embeddings [len(texts), dim]
        (retrieval models: ``embed`` for documents, ``embed_query`` for queries)."""
        return self.predict(model_name, {sig.TEXT: np.array(texts, dtype=object)},
                            signature_name=signature_name)[sig.EMBEDDING]

    def signature_names(self, model_name: str) -> list[str]:
        """The model's signatures (GetModelMetadata)."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model_name
        response = self._call(self._predict.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return sorted(signatures.signature_def)

    def rerank_scores(self, model_name: str, query: str, passages: list[str]) -> np.ndarray:
        """Re-ranking (cross-encoder) models: one query's passages -> their scores, in one request."""
        return self.predict(model_name, {sig.QUERY: np.array([query] * len(passages), dtype=object),
                                         sig.TEXT: np.array(passages, dtype=object)})[sig.SCORE]

    def similarity(self, model_name: str, texts: list[str], texts_b: list[str]) -> list[dict]:
        """Sentence similarity models: pairs -> {"text", "text_b", ``sig.SIMILARITY``: the cosine}
        (NLI models also "class_id" and "probabilities")."""
        if len(texts) != len(texts_b):
            raise ValueError(f"{len(texts)} texts but {len(texts_b)} second texts; give them in pairs.")
        inputs = {sig.TEXT: np.array(texts, dtype=object), sig.TEXT_B: np.array(texts_b, dtype=object)}
        return task_clients.decode_similarity(inputs, self.predict(model_name, inputs))
