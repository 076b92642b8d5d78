"""TF Serving's gRPC services over a ModelManager: PredictionService (Predict, Classify, Regress,
MultiInference, GetModelMetadata) and ModelService (GetModelStatus, HandleReloadConfigRequest)."""
from __future__ import annotations

import logging

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tfx_bert.config import ServingConfig
from tfx_bert.serving import model_config, tensors
from tfx_bert.serving.batching import BatchScheduler
from tfx_bert.serving.manager import ModelManager
from tfx_bert.serving.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    LoadedVersion,
    RowLimitError,
    ServingError,
    invalid,
    readable_error,
)

log = logging.getLogger(__name__)


class Runtime:
    """What every API (gRPC and REST) calls: model lookup, the row limit and (batched) execution."""

    def __init__(self, manager: ModelManager, scheduler: BatchScheduler | None = None,
                 max_rows: int = ServingConfig.max_rows):
        self.manager, self.scheduler, self.max_rows = manager, scheduler, max_rows

    def check_rows(self, rows: int, where: str) -> None:
        """More rows than ``max_rows`` in one request are refused before any tensor is built:
        with or without batching, one request cannot hold the server for minutes."""
        if rows > self.max_rows:
            raise RowLimitError(f"{where}: {rows} rows in one request; the limit is {self.max_rows} "
                                "(serving.max_rows, --max_rows): split the request")

    def lookup(self, model_spec) -> LoadedVersion:
        version = model_spec.version.value if model_spec.HasField("version") else None
        label = model_spec.version_label if model_spec.HasField("version_label") else None
        return self.manager.get(model_spec.name, version, label)

    def execute(self, servable: LoadedVersion, signature: str, arrays: dict, output_filter=(),
                method: str | None = None) -> dict:
        tensors = servable.prepare(signature, arrays, method)
        if self.scheduler is not None:
            return self.scheduler.run(servable, signature, tensors, output_filter)
        return servable.call(signature, tensors, output_filter)

    # Classify / Regress over tf.Examples ------------------------------------------------
    def run_examples(self, servable: LoadedVersion, signature: str, input_proto, method: str) -> dict:
        serialized = serialized_examples(input_proto)
        self.check_rows(len(serialized), "examples")
        signature_def = servable.signature_defs.get(signature or DEFAULT_SIGNATURE)
        servable.signature(signature, method)  # NOT a classify/regress signature -> INVALID_ARGUMENT
        (input_key,) = signature_def.inputs.keys()
        return self.execute(servable, signature, {input_key: np.array(serialized, dtype=object)}, method=method)


def serialized_examples(input_proto) -> list[bytes]:
    """tf.Examples of a Classify/Regress/MultiInference Input, serialized; context features are
    merged into every example (ExampleListWithContext), as TF Serving does."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        examples = list(input_proto.example_list.examples)
    elif kind == "example_list_with_context":
        context = input_proto.example_list_with_context.context
        examples = []
        for example in input_proto.example_list_with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(context)
            merged.MergeFrom(example)
            examples.append(merged)
    else:
        examples = []
    if not examples:
        raise invalid("Input is empty.")
    return [e.SerializeToString() for e in examples]


def classification_result(outputs: dict) -> classification_pb2.ClassificationResult:
    scores = outputs.get("scores")
    classes = outputs.get("classes")
    rows = len(scores) if scores is not None else len(classes)
    result = classification_pb2.ClassificationResult()
    for i in range(rows):
        row = result.classifications.add()
        width = scores.shape[1] if scores is not None else classes.shape[1]
        for j in range(width):
            label = classes[i][j] if classes is not None else b""
            row.classes.add(label=label.decode() if isinstance(label, bytes) else str(label),
                            score=float(scores[i][j]) if scores is not None else 0.0)
    return result


def regression_result(outputs: dict) -> regression_pb2.RegressionResult:
    values = np.asarray(outputs["outputs"]).reshape(-1)
    result = regression_pb2.RegressionResult()
    for value in values:
        result.regressions.add(value=float(value))
    return result


def _fill_spec(target, servable: LoadedVersion, signature: str) -> None:
    target.name = servable.name
    target.version.value = servable.version
    target.signature_name = signature or DEFAULT_SIGNATURE


def _guard(fn):
    """Turns ServingError into the gRPC status TF Serving returns; anything else is the server's
    own fault (INTERNAL, logged with its traceback). The server keeps serving either way."""
    def wrapper(self, request, context):
        try:
            return fn(self, request, context)
        except ServingError as e:
            context.abort(e.code, str(e))
        except Exception as e:
            log.exception("gRPC %s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {readable_error(e, 300)}")
    wrapper.__name__ = fn.__name__
    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, runtime: Runtime):
        self._rt = runtime

    @_guard
    def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        servable = self._rt.lookup(request.model_spec)
        signature = request.model_spec.signature_name
        arrays = servable.arrays_from_protos(signature, dict(request.inputs), self._rt.max_rows)
        outputs = self._rt.execute(servable, signature, arrays, request.output_filter)
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, servable, signature)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tensors.to_proto(value))
        return response

    def _on_examples(self, request, method: str, response, make_result):
        """Classify / Regress: the request's tf.Examples through a classify / regress signature."""
        servable = self._rt.lookup(request.model_spec)
        signature = request.model_spec.signature_name
        outputs = self._rt.run_examples(servable, signature, request.input, method)
        _fill_spec(response.model_spec, servable, signature)
        response.result.CopyFrom(make_result(outputs))
        return response

    @_guard
    def Classify(self, request, context):  # noqa: N802
        return self._on_examples(request, CLASSIFY_METHOD, classification_pb2.ClassificationResponse(),
                                 classification_result)

    @_guard
    def Regress(self, request, context):  # noqa: N802
        return self._on_examples(request, REGRESS_METHOD, regression_pb2.RegressionResponse(), regression_result)

    @_guard
    def MultiInference(self, request, context):  # noqa: N802
        if not request.tasks:
            raise invalid("MultiInferenceRequest has no tasks.")
        names = {(t.model_spec.name, t.model_spec.version.value) for t in request.tasks}
        if len(names) != 1:
            raise invalid("All MultiInference tasks must use the same model name and version.")
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            servable = self._rt.lookup(task.model_spec)
            signature = task.model_spec.signature_name
            result = response.results.add()
            _fill_spec(result.model_spec, servable, signature)
            if task.method_name == CLASSIFY_METHOD:
                outputs = self._rt.run_examples(servable, signature, request.input, CLASSIFY_METHOD)
                result.classification_result.CopyFrom(classification_result(outputs))
            elif task.method_name == REGRESS_METHOD:
                outputs = self._rt.run_examples(servable, signature, request.input, REGRESS_METHOD)
                result.regression_result.CopyFrom(regression_result(outputs))
            else:
                raise invalid(f"Unsupported signature method_name: {task.method_name}")
        return response

    @_guard
    def GetModelMetadata(self, request, context):  # noqa: N802
        if list(request.metadata_field) != ["signature_def"]:
            raise invalid("Metadata field signature_def is the only one supported; "
                          "set metadata_field: ['signature_def']")
        servable = self._rt.lookup(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signature_def_map(servable))
        return response


def signature_def_map(servable: LoadedVersion) -> get_model_metadata_pb2.SignatureDefMap:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, value in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(value)
    return signature_map


def model_status(runtime: Runtime, model_spec) -> get_model_status_pb2.GetModelStatusResponse:
    """AVAILABLE for the loaded versions of the model (or the one the spec names)."""
    failures = runtime.manager.failures(model_spec.name)
    if model_spec.HasField("version") and model_spec.version.value in failures:
        versions, failures = [], {model_spec.version.value: failures[model_spec.version.value]}
    elif model_spec.HasField("version") or model_spec.HasField("version_label"):
        versions, failures = [runtime.lookup(model_spec)], {}
    else:
        if not failures:
            runtime.manager.get(model_spec.name)  # NOT_FOUND for an unknown or empty model
        versions = runtime.manager.versions(model_spec.name)
    response = get_model_status_pb2.GetModelStatusResponse()
    for servable in versions:
        status = response.model_version_status.add()
        status.version = servable.version
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    for version, reason in failures.items():  # as TF Serving reports a version that failed to load
        status = response.model_version_status.add()
        status.version = version
        status.state = get_model_status_pb2.ModelVersionStatus.END
        status.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
        status.status.error_message = reason
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, runtime: Runtime):
        self._rt = runtime

    @_guard
    def GetModelStatus(self, request, context):  # noqa: N802
        return model_status(self._rt, request.model_spec)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        """Serves exactly the request's models; the status says why a reload failed, and the
        previous configuration keeps serving then (as in TF Serving)."""
        response = model_management_pb2.ReloadConfigResponse()
        try:
            self._rt.manager.reload(model_config.from_proto(request.config, "ReloadConfigRequest"))
        except Exception as e:  # a bad config or a model that does not load
            response.status.error_code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
            response.status.error_message = str(e)
        return response
