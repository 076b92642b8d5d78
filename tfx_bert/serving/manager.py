"""Loads, polls and swaps model versions the way TF Serving's file-system source does."""
from __future__ import annotations

import logging
import threading

import grpc

from tfx_bert.serving.model_config import ModelConfig
from tfx_bert.serving.servable import LoadedVersion, ServingError, list_versions

log = logging.getLogger("tfx_bert.serving")


class ModelManager:
    """Serves the versions each model's policy asks for; polls for new ones.

    A new version is loaded before an old one is dropped, and requests hold a reference to the
    version they run on, so swapping versions never fails a request in flight.
    """

    def __init__(self, models: list[ModelConfig], poll_seconds: float = 0, check_ops: bool = True):
        self._check_ops = check_ops
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._configs: dict[str, ModelConfig] = {}
        self._loaded: dict[str, dict[int, LoadedVersion]] = {}
        self._stop = threading.Event()
        self.reload(models)
        if poll_seconds > 0:
            threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True).start()

    @property
    def model_names(self) -> list[str]:
        return sorted(self._configs)

    def reload(self, models: list[ModelConfig]) -> None:
        """Serves exactly ``models`` (HandleReloadConfigRequest): loads new ones, drops removed
        ones. A model that fails to load raises and leaves the previous configuration serving."""
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
        on_disk = list_versions(model.base_path)
        wanted = model.wanted(set(on_disk))
        if not wanted:
            if not current:
                log.warning("No servable versions of model %s under %s yet", model.name, model.base_path)
            return dict(current)  # nothing on disk: keep serving what is loaded
        result = {}
        for version in sorted(wanted):
            result[version] = current.get(version) or LoadedVersion(model.name, version, on_disk[version],
                                                                    self._check_ops)
            if version not in current:
                log.info("Serving %s version %d from %s", model.name, version, on_disk[version])
        return result

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
        if model is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        if label:
            if label not in model.label_map:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Unrecognized servable version label: {label}")
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
