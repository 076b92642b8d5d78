"""Loads, polls and swaps model versions the way TF Serving's file-system source does."""
from __future__ import annotations

import logging
import threading

import grpc

from tfx_bert.serving.model_config import ModelConfig
from tfx_bert.serving.servable import LoadedVersion, ServingError, echo, list_versions

log = logging.getLogger("tfx_bert.serving")


class ModelManager:
    """Serves the versions each model's policy asks for; polls for new ones.

    A new version is loaded before an old one is dropped, and requests hold a reference to the
    version they run on, so swapping versions never fails a request in flight. A version that
    fails to load (a corrupt SavedModel, ops TF Serving lacks) is left out and reported by
    ``failures`` (GetModelStatus: END with the error), logged once; the others keep serving.
    """

    def __init__(self, models: list[ModelConfig], poll_seconds: float = 0, check_ops: bool = True):
        self._check_ops = check_ops
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._configs: dict[str, ModelConfig] = {}
        self._loaded: dict[str, dict[int, LoadedVersion]] = {}
        self._failed: dict[tuple[str, int], tuple] = {}  # (model, version) -> (why it did not load, files' stamp)
        self._stop = threading.Event()
        self.reload(models)
        if poll_seconds > 0:
            threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True).start()

    @property
    def model_names(self) -> list[str]:
        return sorted(self._configs)

    def reload(self, models: list[ModelConfig]) -> None:
        """Serves exactly ``models`` (HandleReloadConfigRequest): loads new ones, drops removed
        ones; versions that fail to load are reported by ``failures``."""
        with self._refresh_lock:
            staged = {}
            for model in models:
                current = self._loaded.get(model.name, {}) if self._configs.get(model.name) == model else {}
                staged[model.name] = self._load_wanted(model, current)
            with self._lock:
                self._configs = {m.name: m for m in models}
                self._loaded = staged

    def refresh(self, name: str) -> None:
        """Loads new versions of ``name`` on disk, drops ones its policy no longer serves."""
        with self._refresh_lock:
            model = self._configs.get(name)
            if model is None:
                return
            loaded = self._load_wanted(model, self._loaded.get(name, {}))
            with self._lock:
                if self._configs.get(name) == model:
                    self._loaded[name] = loaded

    def _load_wanted(self, model: ModelConfig, current: dict[int, LoadedVersion]) -> dict[int, LoadedVersion]:
        """The versions the policy serves, among those that load: a version that fails is left
        out (the next newest serves in its place under a ``latest`` policy) until its files
        change; what is loaded keeps serving when nothing new loads."""
        on_disk = list_versions(model.base_path)
        result: dict[int, LoadedVersion] = {}
        while True:
            broken = {v for v in on_disk if self._still_broken(model.name, v, on_disk[v])}
            wanted = model.wanted(set(on_disk) - broken)
            if not wanted:
                if not current and not broken:
                    log.warning("No servable versions of model %s under %s yet", model.name, model.base_path)
                return dict(current) if not result else result  # nothing (new) loads: keep serving
            new_failure = False
            for version in sorted(wanted - set(result)):
                loaded = current.get(version) or self._load(model.name, version, on_disk[version])
                if loaded is None:
                    new_failure = True
                else:
                    result[version] = loaded
            if not new_failure:
                return {v: result[v] for v in sorted(wanted)}

    def _load(self, name: str, version: int, path: str) -> LoadedVersion | None:
        try:
            loaded = LoadedVersion(name, version, path, self._check_ops)
        except Exception as e:  # one bad version must not stop the others (TF Serving: state END)
            first_line = (str(e).strip().splitlines() or [""])[0][:300]
            reason = f"{path} did not load: {type(e).__name__}: {first_line}"
            if self._failed.get((name, version), (None, None))[0] != reason:
                log.error("Model %s version %d: %s", name, version, reason)  # once, not at every poll
            self._failed[(name, version)] = (reason, _stamp(path))
            return None
        self._failed.pop((name, version), None)
        log.info("Serving %s version %d from %s", name, version, path)
        return loaded

    def _still_broken(self, name: str, version: int, path: str) -> bool:
        failed = self._failed.get((name, version))
        return failed is not None and failed[1] == _stamp(path)  # changed files are tried again

    def failures(self, name: str) -> dict[int, str]:
        """{version: why it did not load} for the versions of ``name`` that failed."""
        with self._lock:
            return {v: reason for (model, v), (reason, _) in sorted(self._failed.items()) if model == name}

    def _poll(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            for name in self.model_names:
                try:
                    self.refresh(name)
                except Exception:  # keep serving the loaded versions
                    log.exception("Could not load a new version of %s", name)

    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        """The version a request names (by number or label), else the newest; NOT_FOUND or
        INVALID_ARGUMENT as TF Serving answers."""
        with self._lock:
            model = self._configs.get(name)
            loaded = dict(self._loaded.get(name, {}))
        name = echo(name)  # a message must fit gRPC's metadata
        if model is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        if label:
            if label not in model.label_map:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Unrecognized servable version label: {echo(label)}")
            version = model.label_map[label]
        if version:
            if version not in loaded:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found for request: Specific({name}, {version})")
            return loaded[version]
        if not loaded:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        return loaded[max(loaded)]

    def versions(self, name: str) -> list[LoadedVersion]:
        """Loaded versions of ``name``, oldest first."""
        with self._lock:
            return [v for _, v in sorted(self._loaded.get(name, {}).items())]

    def stop(self) -> None:
        self._stop.set()


def _stamp(path: str):
    """What changes when any of a version's files is written: each file's path, size and time
    (``saved_model.pb`` and ``variables/`` are written apart, in either order; a version that
    failed to load is tried again once any of them changes)."""
    import tensorflow as tf

    stamp = []
    for directory, _, names in tf.io.gfile.walk(path):
        for name in names:
            file = f"{directory.rstrip('/')}/{name}"
            try:
                stat = tf.io.gfile.stat(file)
            except tf.errors.NotFoundError:  # removed while we looked: the next poll sees it
                continue
            stamp.append((file, stat.length, stat.mtime_nsec))
    return tuple(sorted(stamp)) or None
