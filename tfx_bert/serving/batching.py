"""Server-side request batching, like TF Serving's ``--enable_batching``.

Concurrent requests to the same model version and signature are queued, merged along the batch
dimension (up to ``max_batch_size`` rows, waiting at most ``batch_timeout_s`` for more), run as
one call and split back; ``num_batch_threads`` batches run at once. A request larger than
``max_batch_size`` is refused as TF Serving refuses it.

With ``batch_timeout_s`` 0 a batch is whatever queued while the previous batches ran: no
request waits for company, and batches grow with load. TF Serving's batching guide recommends
it, with ``num_batch_threads`` = CPU cores, as the starting point on CPU-only servers.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from tfx_bert.serving.servable import LoadedVersion, invalid


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """The subset of TF Serving's BatchingParameters this server implements."""

    max_batch_size: int = 32
    batch_timeout_s: float = 0.002
    max_enqueued_batches: int = 100
    num_batch_threads: int = 1


@dataclasses.dataclass
class _Task:
    tensors: dict
    rows: int
    future: Future


class _Queue:
    """One model version + signature + output filter: a queue and the ``num_batch_threads``
    threads that drain it."""

    def __init__(self, servable: LoadedVersion, signature: str, output_filter: tuple, params: BatchingParameters):
        self._servable, self._signature, self._filter, self._params = servable, signature, output_filter, params
        self._tasks: queue.Queue = queue.Queue(maxsize=params.max_enqueued_batches * params.max_batch_size)
        # One thread gathers a batch at a time, so concurrent batches do not split the queue.
        self._gather = threading.Lock()
        for _ in range(max(1, params.num_batch_threads)):
            threading.Thread(target=self._drain, daemon=True).start()

    def submit(self, task: _Task) -> None:
        try:
            self._tasks.put_nowait(task)
        except queue.Full:
            raise invalid("The batch scheduling queue to which this task was submitted is full") from None

    def _drain(self) -> None:
        while True:
            with self._gather:
                batch, oversize = self._next_batch()
            self._run(batch)
            if oversize:
                self._run(oversize)

    def _next_batch(self) -> tuple[list[_Task], list[_Task]]:
        """(the next batch, a task that did not fit in it: its own batch, or empty)."""
        batch = [self._tasks.get()]
        rows = batch[0].rows
        deadline = time.monotonic() + self._params.batch_timeout_s
        while rows < self._params.max_batch_size:
            try:
                remaining = deadline - time.monotonic()
                task = self._tasks.get(timeout=remaining) if remaining > 0 else self._tasks.get_nowait()
            except queue.Empty:
                break
            if rows + task.rows > self._params.max_batch_size:
                return batch, [task]
            batch.append(task)
            rows += task.rows
        return batch, []

    def _run(self, batch: list[_Task]) -> None:
        import tensorflow as tf

        try:
            if len(batch) == 1:
                merged = batch[0].tensors
            else:
                merged = {k: tf.concat([t.tensors[k] for t in batch], axis=0) for k in batch[0].tensors}
            outputs = self._servable.call(self._signature, merged, self._filter)
        except Exception as e:  # a shape mismatch on merging, or the model's own error
            if len(batch) > 1:
                for task in batch:  # run them one by one so one bad request fails alone
                    self._run([task])
                return
            batch[0].future.set_exception(e)
            return
        start = 0
        for task in batch:
            task.future.set_result({k: v[start:start + task.rows] if np.ndim(v) else v
                                    for k, v in outputs.items()})
            start += task.rows


class BatchScheduler:
    """Routes each request to the queue of its model version and signature."""

    def __init__(self, params: BatchingParameters):
        self.params = params
        self._queues: dict[tuple, _Queue] = {}
        self._lock = threading.Lock()

    def run(self, servable: LoadedVersion, signature: str, tensors: dict, output_filter=()) -> dict:
        """Runs one request through its batch; blocks until the batch has run."""
        rows = {int(t.shape[0]) for t in tensors.values() if t.shape.rank}
        if len(rows) != 1:
            return servable.call(signature, tensors, output_filter)  # no common batch dimension
        (size,) = rows
        if size > self.params.max_batch_size:
            raise invalid(f"Task size {size} is larger than maximum input batch size "
                          f"{self.params.max_batch_size}")
        key = (id(servable), signature, tuple(output_filter))
        with self._lock:
            if key not in self._queues:
                self._queues[key] = _Queue(servable, signature, tuple(output_filter), self.params)
            target = self._queues[key]
        task = _Task(tensors, size, Future())
        target.submit(task)
        return task.future.result()
