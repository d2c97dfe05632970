"""match/worker.py: a model fitted in a worker process is the model fitted here; the asking process stays light."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.errors import ModelError
from monitor.match import worker
from monitor.match.classify import TopicModel
from monitor.models import Item, Label
from tests.test_classify import EXAMPLES, TOPICS, _stream, _varied
from tests.test_learn import T0

ROOT = Path(__file__).resolve().parent.parent


def matches(model: TopicModel) -> list[object]:
    """Every Match of every kind of item, explained for every topic: what must not change by a byte."""
    items = [*_varied(), *((text, text) for text in _stream(40))]
    return [model.classify(title, text, explain_all=True) for title, text in items]


def test_a_model_fitted_in_a_worker_scores_as_the_one_fitted_here(tmp_path: Path) -> None:
    background = _stream(400)  # enough items to self-train: the part that needs scikit-learn
    here = TopicModel.build(TOPICS, EXAMPLES, background)
    there = worker.build(TOPICS, EXAMPLES, background)
    assert there is not here and matches(there) == matches(here)
    path = tmp_path / "model.npz"
    here.save(path)
    assert matches(worker.load(path, TOPICS, EXAMPLES)) == matches(TopicModel.load(path, TOPICS, EXAMPLES))
    # A refit keeps the labels, learned again on the new statistics, as model.refit does on its own.
    item = Item(feed="f", key="k", title="Кансас", link=None, published=T0, content="Wheat silos are full in Kansas.")
    taught = here.with_labels([(Label(item=item.uid, topic="grain", relevant=True, source="cli"), item)])
    newer = _stream(300)
    refit_there = taught.refit(newer, fit=worker.fit)
    assert refit_there.labels == taught.labels
    assert matches(refit_there) == matches(taught.refit(newer))


def test_its_model_error_is_raised_here(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"while loading the topic model from .*model\.npz"):
        worker.load(path, TOPICS, EXAMPLES)


def die(code: int) -> TopicModel:
    """A fit that ends its process before answering (the OOM killer's SIGKILL, a crash in a library)."""
    os._exit(code)


def test_a_worker_that_dies_without_a_model_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="exit code 3"):
        worker._in_worker(die, 3)


# A fresh interpreter opens the daemon's App (its first start builds the model), refits, classifies; then prints
# what it imported of the heavy libraries. (One-shot commands fit in their own process: app.load_model.)
APP = """
import sys
from monitor import config as cfg
from monitor.service.daemon import daemon_app
app = daemon_app(cfg.load(sys.argv[1], env={}))
app.refit()
assert app.pipeline.model.classify("Wheat", "Wheat exports rose as the harvest beat forecasts.")[0].matched
app.close()
print("imported:", *sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy"}))
"""


@pytest.mark.slow  # a fresh process is the point: this one imported scikit-learn long ago
def test_the_daemons_process_never_imports_scikit_learn_or_scipy(tmp_path: Path) -> None:
    # Issue 16: scikit-learn and SciPy cost the daemon ~70 MB of RSS for good; loading, building and refitting
    # fit in a worker process.
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            settings: {{data_dir: {tmp_path / "data"}}}
            channels: {{console: {{type: console}}}}
            feeds: [{{name: F, url: "http://127.0.0.1:9/feed.xml"}}]
            topics:
              - {{id: grain, name: Grain, description: "Grain markets: wheat and corn.", keywords: [wheat, corn]}}
            """),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-c", APP, str(config)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["imported:"], result.stdout + result.stderr
