"""The representation evaluator inside training, and eval.py on what training wrote."""

import dataclasses
import glob
import json
import logging
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from configs import base
from conftest import REPO, initial_state, tiny_config
from gan_jax import data
from gan_jax import loop
from gan_jax import options
from gan_jax import runs
from gan_jax.evaluation import evaluators
from gan_jax.evaluation import representation

ROWS = ("gan_discriminator", "random_discriminator", "raw_pixels")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A 2-step run whose config asks for the evaluator at every 2 steps (so once, at the end)."""
  workdir = tmp_path_factory.mktemp("run")
  config = tiny_config(total_steps=2, eval_every=2, **{"evals.representation.kmeans_features": "last_conv_avg",
                                                       "evals.representation.probe_features": "last_conv_avg",
                                                       "evals.representation.n_init": 2,
                                                       "evals.game": evaluators.block("game")})
  loop.train_and_evaluate(config, str(workdir))
  return workdir


def run_eval(*flags):
  return subprocess.run([sys.executable, "eval.py", *flags], cwd=REPO, capture_output=True, text=True,
                        timeout=600)


@pytest.fixture(scope="module")
def eval_py(trained_run):
  """eval.py on the trained run, once: (its output, the metrics.json it wrote)."""
  result = run_eval(f"--workdir={trained_run}")
  assert result.returncode == 0, result.stderr[-3000:]
  return result, json.loads((trained_run / "eval" / "step_2" / "metrics.json").read_text())


def logged_scalars(workdir):
  """{(tag, step): value} of a run's TensorBoard files."""
  scalars = {}
  for path in glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        scalars[(value.tag, event.step)] = value.simple_value
  return scalars


def test_training_logs_the_evaluator_to_tensorboard(trained_run):
  scalars = logged_scalars(trained_run)
  for row in ROWS:
    for metric in ("kmeans_acc", "kmeans_nmi", "kmeans_ari", "kmeans_inertia", "linear_probe_test_accuracy"):
      assert (f"representation/{row}/{metric}", 2) in scalars, (row, metric)
  assert 0.1 <= scalars[("representation/raw_pixels/kmeans_acc", 2)] <= 1.0
  # MNIST pixels are nearly linearly separable.
  assert scalars[("representation/raw_pixels/linear_probe_test_accuracy", 2)] > 0.8


def test_training_and_eval_py_report_the_same_keys_and_values(trained_run, eval_py):
  """One stream (`evaluators.run`): what training logged at its last step is what eval.py
  wrote for that checkpoint, key for key (TensorBoard keeps the numbers, as float32)."""
  logged = {tag: value for (tag, step), value in logged_scalars(trained_run).items()
            if step == 2 and tag.split("/")[0] in ("representation", "generation", "game")}
  _, metrics = eval_py
  written = evaluators.numbers((key, value) for key, value in metrics.items() if "/" in key)
  # 11 numbers in each of the 3 representation rows, 7 in the game's.
  assert logged.keys() == written.keys() and len(logged) == 3 * 11 + 7
  assert {key: np.float32(value) for key, value in written.items()} == logged


@dataclasses.dataclass(frozen=True)
class WeightOptions:
  """The mean absolute weight of one of D's layers, trained and at initialisation."""
  layer: str = options.field("conv1", "Which layer's kernel.")
  scale: float = options.field(1.0, "A factor.", "> 0")


class WeightEvaluator:
  """An evaluator as a new module would declare one: `Evaluator(settings, context).run(state)`."""

  def __init__(self, settings, context):
    self.settings, self.initial = settings, context.initial_discriminator

  def run(self, state):
    kernel = lambda variables: variables["params"][self.settings.layer]["kernel"]
    mean_abs = lambda variables: self.settings.scale * float(np.abs(kernel(variables)).mean())
    yield "trained/mean_abs_weight", mean_abs(state["discriminator"])
    yield "initial/mean_abs_weight", mean_abs(self.initial)
    yield "layer", self.settings.layer  # Not a number: metrics.json only.


def test_an_evaluator_of_a_new_module_and_its_block_runs_in_training_and_eval_py(tmp_path, monkeypatch):
  """Adding an evaluator is its module and its block in `config.evals`: here a module the test
  makes, registered as gan_jax.evaluation.weights, found by its block's name by both."""
  module = types.ModuleType("gan_jax.evaluation.weights")
  module.Options, module.Evaluator = WeightOptions, WeightEvaluator
  monkeypatch.setitem(sys.modules, module.__name__, module)
  config = tiny_config(total_steps=2, eval_every=2)
  config.evals = {"weights": evaluators.block("weights", scale=2.0)}  # It alone: quick.
  loop.train_and_evaluate(config, str(tmp_path))
  logged = {tag: value for (tag, _), value in logged_scalars(tmp_path).items() if tag.startswith("weights/")}
  assert logged.keys() == {"weights/trained/mean_abs_weight", "weights/initial/mean_abs_weight"}
  metrics = runs.evaluate_workdir(str(tmp_path))
  assert {key: np.float32(metrics[key]) for key in logged} == logged and metrics["weights/layer"] == "conv1"
  assert json.loads((tmp_path / "eval" / "step_2" / "metrics.json").read_text())["weights/layer"] == "conv1"
  config.evals.weights.scael = 1.0
  with pytest.raises(ValueError, match=r"^config.evals.weights.scael is not a field; allowed: layer, scale$"):
    loop.validate_config(config)
  config.evals = {"weighs": evaluators.block("weights")}
  with pytest.raises(ValueError, match=r"^config.evals.weighs: no evaluator gan_jax.evaluation.weighs "):
    loop.validate_config(config)


def test_eval_py_writes_metrics_table_and_plots(trained_run, eval_py):
  result, metrics = eval_py
  table = result.stdout.splitlines()
  assert "step 2" in table[0] and "mnist_5k:test (1000)" in table[0]
  # The game's line first (is D playing?), then the representation table.
  assert table[1].split()[0] == "game" and table[2].split()[0] == "real_vs_generated"
  assert float(table[2].split()[1]) == pytest.approx(metrics["game/real_vs_generated/accuracy"], abs=1e-3)
  table = table[2:]
  assert [line.split()[0] for line in table[2:]] == list(ROWS)

  out = trained_run / "eval" / "step_2"
  assert metrics["step"] == 2 and metrics["dataset"] == "mnist_5k"
  protocol = metrics["representation/protocol"]
  assert (protocol["train_size"], protocol["test_size"], protocol["kmeans"]["k"]) == (4000, 1000, 10)
  assert [metrics[f"representation/{row}/feature_dim"] for row in ROWS] == [32, 32, 784]
  # The default protocol whitens to 32 principal components before k-means.
  assert metrics["representation/raw_pixels/kmeans_dim"] == 32
  for row in ROWS:
    prefix = f"representation/{row}/"
    r = {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}
    assert set(r) >= {"kmeans_acc", "kmeans_nmi", "kmeans_ari", "kmeans_inertia", "linear_probe_test_accuracy",
                      "linear_probe_l2", "knn_test_accuracy"}
    assert np.sum(r["kmeans_contingency"]) == 1000
    # The printed row is the JSON's numbers.
    printed = next(line.split() for line in table if line.startswith(row))
    assert float(printed[1]) == pytest.approx(r["kmeans_acc"], abs=1e-4)
    assert float(printed[4]) == pytest.approx(r["linear_probe_test_accuracy"], abs=1e-4)
    for plot in (f"contingency_{row}.png", f"embedding_{row}.png"):
      assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # Two steps of training move the discriminator away from its initialisation.
  assert (metrics["representation/gan_discriminator/kmeans_inertia"]
          != metrics["representation/random_discriminator/kmeans_inertia"])


def test_validation_never_reads_the_test_split(trained_run, monkeypatch):
  loaded = []
  load_split = data.load_split
  monkeypatch.setattr(data, "load_split",
                      lambda data_config, split, **kw: loaded.append(split) or load_split(data_config, split, **kw))
  metrics = runs.evaluate_workdir(str(trained_run), validation=True)
  assert loaded == ["train"]
  protocol = metrics["representation/protocol"]
  assert (protocol["train_split"], protocol["train_size"]) == ("mnist_5k:train[fit 80%]", 3200)
  assert (protocol["test_split"], protocol["test_size"]) == ("mnist_5k:train[validation 20%]", 800)
  assert np.sum(metrics["representation/raw_pixels/kmeans_contingency"], axis=1).tolist() == [80] * 10
  saved = json.loads((trained_run / "eval" / "step_2_validation" / "metrics.json").read_text())
  assert saved["representation/protocol"]["kmeans"]["scored_on"] == "mnist_5k:train[validation 20%]"


def snapshot(directory):
  """Every file and folder under `directory`, hidden ones included, with file contents."""
  out = {}
  for root, dirs, names in os.walk(directory):
    out.update({os.path.join(root, d): None for d in dirs})
    out.update({os.path.join(root, n): open(os.path.join(root, n), "rb").read() for n in names})
  return out


@pytest.mark.parametrize("flags,message", [
    (["--step=7"], "--step=7: no checkpoint at that step in"),
    (["--features=conv9"], "--features='conv9'; allowed: last_conv_avg, last_conv_max, dcgan, pre_logits"),
    (["--num_clusters=0"], "--num_clusters=0 must be positive"),
])
def test_eval_py_bad_input_is_one_line_and_changes_nothing(trained_run, flags, message):
  # An Orbax temporary directory, as a save in progress by a training run would leave.
  in_progress = trained_run / "checkpoints" / "4.orbax-checkpoint-tmp-1234"
  in_progress.mkdir(exist_ok=True)
  before = snapshot(trained_run)
  result = run_eval(f"--workdir={trained_run}", *flags)
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("eval.py: ") and message in last, result.stderr[-2000:]
  assert snapshot(trained_run) == before
  in_progress.rmdir()


def test_eval_py_on_a_directory_without_a_run(tmp_path):
  result = run_eval(f"--workdir={tmp_path}")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == f"eval.py: --workdir={tmp_path}: no config.json, so not a train.py workdir"
  assert os.listdir(tmp_path) == []

  (tmp_path / "config.json").write_text(json.dumps(tiny_config().to_dict()))
  result = run_eval(f"--workdir={tmp_path}")
  assert f"no checkpoint in {tmp_path}/checkpoints; train first" in result.stderr.strip().splitlines()[-1]
  assert os.listdir(tmp_path) == ["config.json"]


def test_unlabelled_data_reports_inertia_only(config, caplog):
  # A random D: the initial train state's (the tiny config's init, compiled once for the session).
  gan, state = initial_state(config)
  variables = state["discriminator"]
  images, _ = data.mnist_5k("test")
  train, test = data.from_arrays(images[:600]), data.from_arrays(images[600:])
  settings = base.get_config().evals.representation
  settings.kmeans_features = settings.probe_features = "last_conv_avg"
  settings.n_init = 2
  context = evaluators.Context(config, gan.discriminator, variables, make_generate_fn=None)
  with pytest.raises(ValueError, match="set config.evals.representation.num_clusters"):
    representation.Evaluator(settings, context, (train, test))

  settings.num_clusters = 5
  evaluator = representation.Evaluator(settings, context, (train, test))
  assert "has no labels" in caplog.text
  result = evaluator.evaluate_features(evaluator.features(variables))
  assert set(result) == {"kmeans", "feature_dim", "kmeans_dim"} and set(result["kmeans"]) == {"inertia"}
  assert result["kmeans"]["inertia"] > 0
  pairs = dict(evaluator.run({"discriminator": variables, "step": 0}))
  assert pairs.keys() == {f"{row}/{key}" for row in ROWS for key in ("kmeans_inertia", "feature_dim", "kmeans_dim")} | {
      "protocol"}
  assert pairs["protocol"]["linear_probe"] is None and pairs["protocol"]["kmeans"]["k"] == 5


def test_evaluator_settings_are_checked_by_name():
  config = tiny_config()
  config.evals.representation.whitten = 16
  with pytest.raises(ValueError, match=r"config.evals.representation.whitten is not a field; allowed: "):
    loop.validate_config(config)
  settings = base.get_config().evals.representation
  settings.whiten = -1
  with pytest.raises(ValueError, match=r"config.evals.representation.whiten=-1 must be >= 0"):
    evaluators.check("representation", settings)
  config = tiny_config(**{"evals.representation.kmeans_features": "pixels"})
  with pytest.raises(ValueError, match=r"config.evals.representation.kmeans_features=.pixels.; allowed: "):
    loop.validate_config(config)


def test_loading_a_run_warns_nothing(trained_run, caplog):
  """Orbax warns about each option a read-only manager overrides and that it is read only:
  noise in every notebook that loads a run."""
  with caplog.at_level(logging.WARNING):
    assert runs.load_run(str(trained_run)).step == 2
  assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
