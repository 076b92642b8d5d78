"""Console progress for pipeline runs: one line as each component starts and finishes.

TFX logs everything through absl at INFO; the full log goes to a file and the console gets
the component lines (with elapsed time), the project's own ``[train]``-style lines (printed by
executors and run_fns) and errors.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
import warnings

_COMPONENT = re.compile(r"^(?:Component|node) (\S+) is (running|finished)\.$")


class _ProgressHandler(logging.Handler):
    """Writes progress lines to whatever ``sys.stdout`` is at the time (it may be replaced)."""

    def __init__(self):
        super().__init__(level=logging.INFO)
        self._started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except (ValueError, OSError):  # stdout closed or gone: progress is not worth a crash
            pass

    def _emit(self, record: logging.LogRecord) -> None:
        self._stream = sys.stdout
        try:
            message = record.getMessage()
        except Exception:  # a malformed log record is not worth a crash
            return
        match = _COMPONENT.match(message)
        if match:
            name, state = match.groups()
            if state == "running":
                self._started[name] = time.time()
                self._stream.write(f"▶ {name} ...\n")
            else:
                took = time.time() - self._started.get(name, time.time())
                self._stream.write(f"✔ {name} finished in {took:.1f}s\n")
            self._stream.flush()
        elif record.levelno >= logging.ERROR:
            self._stream.write(f"✘ {message.splitlines()[0] if message else record.name}\n")
            self._stream.flush()


def quiet_environment() -> None:
    """Hides TF's C++ start-up notices in this process and the Beam workers it starts."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ notices; errors still raise in Python
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def install(log_file: str) -> None:
    """Full INFO log to ``log_file``; progress lines to stdout."""
    os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    root = logging.getLogger()
    for handler in list(root.handlers):  # also those of an earlier install() in this process
        root.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):
            handler.close()
    absl_handler = absl_logging.get_absl_handler()
    absl_logger = logging.getLogger("absl")
    absl_logger.handlers = [h for h in absl_logger.handlers if h is not absl_handler]
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    root.addHandler(_ProgressHandler())
    root.setLevel(logging.INFO)
    # TF and Beam attach their own console handlers; send their records to the file instead.
    for name in ("tensorflow", "apache_beam", "absl"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
