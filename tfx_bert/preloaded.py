"""Fresh processes without the import bill: each one forked from a server process that has
imported the heavy modules (TensorFlow, TFX, Beam) and done nothing else, instead of an
interpreter that imports them again. ``multiprocessing``'s forkserver does the forking.

Measured here: a process that imports TensorFlow, TFX, Beam and TFMA spends about 6 s of CPU
before its own work starts; for a compiled pipeline's small steps (a SchemaGen, a DataGate) that
is most of their time. A forked process is still a process of its own: its own memory, working
directory, environment, output and exit code; nothing runs in the server, so no state passes from
one process to the next.

The server is started once per process, on first use, with the modules of that first use
(``set_forkserver_preload`` is process-wide): a later call that names other modules still works,
its processes import what the server lacks themselves (``server_modules()`` says what it has).
"""
from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys


def redirect_output(log_path: str, stderr_path: str | None = None) -> None:
    """This process's stdout and stderr (file descriptors and Python streams) appended to
    ``log_path`` (stderr to ``stderr_path`` where given)."""
    for fd, path in ((1, log_path), (2, stderr_path or log_path)):
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, fd)
        os.close(log)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)


_server_modules: tuple[str, ...] | None = None  # what this process's server imported


def server_modules() -> tuple[str, ...]:
    """The modules this process's server imported (empty before its first use)."""
    return _server_modules or ()


def start(target, args: tuple, preload: tuple[str, ...]) -> multiprocessing.Process:
    """Starts ``target(*args)`` in a process forked from the server that imported ``preload``
    (the first call's ``preload``: see the module's docstring)."""
    global _server_modules
    context = multiprocessing.get_context("forkserver")
    if _server_modules is None:
        _server_modules = tuple(preload)
        context.set_forkserver_preload(list(preload))
    process = context.Process(target=target, args=args, daemon=False)
    process.start()
    return process


def _module_main(module: str, argv: list[str], log_path: str, env: dict | None, cwd: str | None,
                 stderr_path: str | None = None, niceness: int = 0) -> None:
    redirect_output(log_path, stderr_path)
    if niceness:
        os.nice(niceness)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if cwd:
        os.chdir(cwd)
        sys.path.insert(0, cwd)  # as `python -m` puts the working directory first
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def run_module(module: str, argv: list[str], log_path: str, preload: tuple[str, ...], env: dict | None = None,
               cwd: str | None = None, timeout: float | None = None, stderr_path: str | None = None,
               niceness: int = 0) -> int:
    """``python -m module *argv`` (in ``cwd``, with ``env``: None inherits) in a forked process,
    its output appended to ``log_path`` (its stderr to ``stderr_path`` where given), at
    ``niceness`` more than this process's (``os.nice``); returns its exit code (an uncaught
    exception: 1, its traceback in the log). Past ``timeout`` seconds the process is killed and
    ``subprocess.TimeoutExpired`` raised, as ``subprocess.run`` does."""
    process = start(_module_main, (module, list(argv), log_path, env, cwd, stderr_path, niceness), preload)
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        raise subprocess.TimeoutExpired([module, *argv], timeout)
    return process.exitcode
