"""Fitting the topic model in a worker process: the daemon never imports scikit-learn or SciPy.

    load(path, topics, examples)      TopicModel.load   ┐ each in a fresh process (spawn) that imports scikit-learn,
    build(topics, examples, texts)    TopicModel.build  ├ fits, hands the fitted model back (pickled: the same
    fit(specs, texts)                 TopicModel.fit    ┘ arrays and tables, so the same scores) and exits;
                                                        model.refit(texts, fit=worker.fit) refits with it

Why (issue 16): every model is self-trained with scikit-learn's LogisticRegression when it is made, also one loaded
from its file, so the daemon imported scikit-learn and SciPy (~70 MB of RSS) at every start and held them for
good; and a refit left its garbage (20,000 texts, their terms, the vectoriser's tables) in the daemon's heap. In a
worker both leave with the process. Scoring needs neither: the fitted model is numpy arrays and dictionaries.
The analyst's labels are learned in the caller (`with_labels`, numpy only), as before.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..config import Topic
from ..errors import ModelError
from .classify import TopicModel
from .profile import TopicSpec


def load(path: Path, topics: Sequence[Topic], examples: Mapping[str, Sequence[tuple[str, str]]]) -> TopicModel:
    """TopicModel.load in a worker process (ModelError as there)."""
    return _in_worker(TopicModel.load, path, tuple(topics), _plain(examples))


def build(
    topics: Sequence[Topic], examples: Mapping[str, Sequence[tuple[str, str]]], background: Sequence[str]
) -> TopicModel:
    """TopicModel.build in a worker process."""
    return _in_worker(TopicModel.build, tuple(topics), _plain(examples), list(background))


def fit(specs: Sequence[TopicSpec], background: Sequence[str]) -> TopicModel:
    """TopicModel.fit in a worker process (model.refit(texts, fit=worker.fit) refits with it)."""
    return _in_worker(TopicModel.fit, tuple(specs), list(background))


def _plain(examples: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, tuple[tuple[str, str], ...]]:
    return {topic: tuple(texts) for topic, texts in examples.items()}


def _in_worker(fit: Callable[..., TopicModel], *args: Any) -> TopicModel:
    """fit(*args) in a fresh process; its model, or the ModelError it raised.

    spawn, not fork: the daemon has threads, and a forked child would inherit their locks (feeds/pool.py). The
    worker is daemonic, so a daemon that stops while it fits takes it along; one that is killed leaves it to
    finish and exit on the broken pipe (or to systemd's control group).
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(send, fit, args), name="monitor-fit", daemon=True)
    try:
        process.start()
    finally:
        send.close()  # the worker has its own end: when it dies without an answer, recv() sees the end of the pipe
    try:
        answer = receive.recv()
    except EOFError:
        process.join()
        raise ModelError(
            f"the model-fitting process ended without a model (exit code {process.exitcode}; out of memory?)"
        ) from None
    finally:
        receive.close()
    process.join()
    if isinstance(answer, ModelError):
        raise answer
    if not isinstance(answer, TopicModel):
        raise ModelError(f"the model-fitting process answered {type(answer).__name__}, not a model")
    return answer


def _serve(send: Connection, fit: Callable[..., TopicModel], args: tuple[Any, ...]) -> None:
    """The worker's body: fit and send the model back (a ModelError instead, for the caller to raise)."""
    answer: TopicModel | ModelError
    try:
        answer = fit(*args)
    except ModelError as exc:
        answer = exc
    try:
        send.send(answer)
    except BrokenPipeError:  # the caller is gone: nobody to hand the model to
        pass
    finally:
        send.close()
