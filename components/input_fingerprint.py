"""A fingerprint of an ExampleGen's input files, so TFX's cache notices changed data.

TFX reuses a component's cached outputs when its execution properties and inputs are the same.
An ExampleGen reading files has no input artifacts, so without this a rerun over edited files
in the same place would reuse the old examples. The fingerprint (each matching file's path,
size and modification time) is an execution property computed when the pipeline is built,
like the one TFX's FileBasedExampleGen driver computes. Paths that cannot be listed from here
(a runtime parameter, a bucket without credentials at compile time) get an empty fingerprint:
caching then keys on the path alone, as before.
"""
from __future__ import annotations

import hashlib

import tensorflow as tf

from tfx_bert import spans


def _files(pattern: str):
    for match in tf.io.gfile.glob(pattern):
        if tf.io.gfile.isdir(match):
            for root, _, names in tf.io.gfile.walk(match):
                yield from (f"{root.rstrip('/')}/{name}" for name in names)
        else:
            yield match


def fingerprint(patterns: list) -> str:
    """sha256 over the (path, size, mtime) of every file matching ``patterns`` (of every span,
    where a pattern has ``{SPAN}``-style specs: a new span changes it); "" if any pattern is not
    a plain string or cannot be listed."""
    if not all(isinstance(p, str) for p in patterns):
        return ""
    digest = hashlib.sha256()
    try:
        for pattern in patterns:
            for path in sorted(_files(spans.as_glob(pattern))):
                stat = tf.io.gfile.stat(path)
                digest.update(f"{path}\0{stat.length}\0{stat.mtime_nsec}\n".encode())
    except (tf.errors.OpError, OSError):
        return ""
    return digest.hexdigest()
