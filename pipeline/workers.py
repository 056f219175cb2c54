# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Worker processes, one job at a time each, that say which job a dead worker held.

``concurrent.futures.ProcessPoolExecutor`` fails every job once one worker dies and terminates the
others, so a section still training beside a killed worker would be lost, and the error names no job.
Here each worker has its own pipe, carrying its jobs, its progress lines and its results: a worker that
dies fails only the job it held (``WorkerDied`` names it and how the worker ended), and the others go on.
Workers ignore SIGINT (the parent decides), die of SIGTERM and die with the parent
(``interrupts.child_of``). No torch here: ``--render`` lays out its documents with these workers too.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing.connection
import os
import signal
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TextIO

from .interrupts import blocked, child_of, critical


class WorkerDied(RuntimeError):
    """A worker process ended while it held a job; nothing of that job was returned."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its ``__cause__``."""

    def __str__(self) -> str:
        return "\n" + self.args[0]


class LineStream:
    """A worker's progress stream: each write goes to the parent through the worker's pipe (never a terminal)."""

    def __init__(self, conn):
        self.conn = conn

    def write(self, text: str) -> None:
        self.conn.send(("line", text))

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _serve(conn, parent: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """A worker's life: run each job received, send back its result or its exception; stop on None or EOF."""
    child_of(parent)
    if initializer is not None:
        initializer(LineStream(conn), *initargs)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        fn, args = task
        try:
            message: tuple = ("result", fn(*args))
        except BaseException as err:  # noqa: BLE001  (sent to the parent, which raises it)
            message = ("error", err, traceback.format_exc())
        try:
            conn.send(message)
        except Exception:  # an exception that cannot be pickled: its text, with the traceback
            conn.send(("error", RuntimeError(f"{type(message[1]).__name__}: {message[1]}"), message[-1]))


def ended(exitcode: int | None) -> str:
    """How a process ended, in words."""
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing Process
    conn: Any  # the parent's end of its pipe


class Workers:
    """Up to ``count`` worker processes of ``context`` (started when first needed), each running one job at a
    time; ``initializer(stream, *initargs)`` runs first in each, with a stream whose lines reach ``stream`` here."""

    def __init__(self, count: int, context, initializer: Callable[..., None] | None = None, initargs: tuple = (),
                 stream: TextIO | None = None):
        self.count, self.context, self.initializer, self.initargs = count, context, initializer, initargs
        self.stream = stream
        self.queue: collections.deque = collections.deque()  # (label, fn, args, future) not yet sent
        self.idle: list[_Worker] = []
        self.busy: dict[_Worker, tuple[str, cf.Future]] = {}  # worker -> the label and future of its job

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.stop(kill=kind is not None)

    def submit(self, label: str, fn: Callable, *args) -> cf.Future:
        """Run ``fn(*args)`` in a worker; ``label`` ("section q1") names the job if its worker dies."""
        future: cf.Future = cf.Future()
        self.queue.append((label, fn, args, future))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        while self.queue and (self.idle or len(self.busy) < self.count):
            if not self.idle:
                self._start()
            worker, (label, fn, args, future) = self.idle[-1], self.queue[0]
            self.busy[worker] = (label, future)  # in idle or busy at every moment: a signal here loses no worker
            self.idle.pop()
            self.queue.popleft()
            worker.conn.send((fn, args))

    def _start(self) -> None:
        """Start a worker, idle; signals wait until it is known (so that ``stop`` ends it), and in the worker until
        ``child_of`` has given it its own handlers."""
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(theirs, os.getpid(), self.initializer, self.initargs),
                                       daemon=True)
        with blocked():
            process.start()
            theirs.close()
            self.idle.append(_Worker(process, ours))

    def wait(self, futures: Iterable[cf.Future], timeout: float | None = None) -> set[cf.Future]:
        """Wait up to ``timeout`` seconds (None: without limit) for a worker to send something or end; the
        futures among ``futures`` that are done."""
        futures = list(futures)
        if not any(f.done() for f in futures) and self.busy:
            workers = list(self.busy)
            ready = multiprocessing.connection.wait([w.conn for w in workers] + [w.process.sentinel for w in workers],
                                                    timeout)
            for worker in workers:
                if worker.conn in ready or worker.process.sentinel in ready:
                    self._read(worker)
            self._dispatch()
        return {f for f in futures if f.done()}

    def _read(self, worker: _Worker) -> None:
        """Take what the worker sent (lines, then its job's result); if it has ended, fail the job it held."""
        eof = False
        try:
            while worker.conn.poll():
                kind, *body = worker.conn.recv()
                if kind == "line":
                    if self.stream is not None:
                        self.stream.write(body[0])
                        self.stream.flush()
                    continue
                _, future = self.busy.pop(worker)
                if kind == "result":
                    future.set_result(body[0])
                else:
                    err, text = body
                    err.__cause__ = RemoteTraceback(text)
                    future.set_exception(err)
                self.idle.append(worker)
        except (EOFError, OSError):  # the worker ended, perhaps in the middle of a message
            eof = True
        if not eof and worker.process.exitcode is None:
            return
        worker.process.join(timeout=5)
        worker.conn.close()
        if worker in self.idle:
            self.idle.remove(worker)
        if worker in self.busy:
            label, future = self.busy.pop(worker)
            future.set_exception(WorkerDied(f"the worker process of {label} {ended(worker.process.exitcode)}"))

    def stop(self, kill: bool = False) -> None:
        """End every worker: idle ones are told to stop; with ``kill``, and for a worker still busy, it is killed
        (its job abandoned). Bounded: a worker that does not stop within seconds is killed; signals wait for the end."""
        with critical():
            self._stop(kill)

    def _stop(self, kill: bool) -> None:
        workers = list(dict.fromkeys([*self.idle, *self.busy]))
        for worker in workers:
            if kill or worker in self.busy:
                worker.process.kill()
            else:
                try:
                    worker.conn.send(None)
                except OSError:
                    worker.process.kill()
        for worker in workers:
            worker.process.join(timeout=10)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        for _, _, _, future in self.queue:
            future.cancel()
        self.queue.clear()
        self.idle, self.busy = [], {}
