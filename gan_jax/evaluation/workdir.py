"""Evaluation of a training run's checkpoint: what `eval.py` does.

  metrics = evaluate_workdir("runs/mnist_dcgan")             # the latest checkpoint
  metrics = evaluate_workdir("runs/mnist_dcgan", step=2000)  # another one

Reads the run's own `config.json`, restores the discriminator, evaluates it beside the
controls (`representation.ROWS`) and writes `workdir/eval/step_<step>/`: `metrics.json`,
and for each row `contingency_<row>.png` (classes x k-means clusters) and
`embedding_<row>.png` (test features on two principal components, coloured by class).
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import jax
import ml_collections

from gan_jax import checkpoints
from gan_jax import files
from gan_jax import parallel
from gan_jax import training  # Attribute access at call time only (training imports this package).
from gan_jax.evaluation import generation
from gan_jax.evaluation import linear_probe
from gan_jax.evaluation import protocol
from gan_jax.evaluation import report
from gan_jax.evaluation import representation


class EvalError(ValueError):
  """The workdir, step or settings asked for cannot be evaluated; the message says why."""


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run saved in `workdir/config.json`."""
  config_path = os.path.join(workdir, "config.json")
  if not os.path.isfile(config_path):
    raise EvalError(f"--workdir={workdir}: no config.json, so not a train.py workdir")
  with open(config_path) as f:
    return ml_collections.ConfigDict(json.load(f))


class Run(NamedTuple):
  config: ml_collections.ConfigDict
  gan: Any                   # training.GAN
  step: int
  discriminator: Any         # The trained discriminator's variables.
  initial_discriminator: Any  # Its variables at initialisation (the random control).
  state: dict[str, Any]      # The whole restored train state.


def load_run(workdir: str, step: int | None = None, config: ml_collections.ConfigDict | None = None) -> Run:
  """The run's config, modules and state at checkpoint `step` (default: the latest).

  The initial variables come from the run's own seed scheme (`training.init_state`), so
  the random control is the network this run started from. `config`: the run's, if
  already read.
  """
  config = config or load_config(workdir)
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise EvalError(f"--workdir={workdir}: no checkpoint in {directory}; train first")
  manager = checkpoints.make_manager(workdir, keep=config.keep, asynchronous=False, read_only=True)
  try:
    steps = sorted(manager.all_steps())
    if not steps:
      raise EvalError(f"--workdir={workdir}: no checkpoint in {directory}; train first")
    if step is None:
      step = steps[-1]
    elif step not in steps:
      raise EvalError(f"--step={step}: no checkpoint at that step in {directory}; have {', '.join(map(str, steps))}")
    gan = training.make_gan(config)
    try:
      # The size of the training set, where the state holds a table of neighbours per image.
      num_examples = checkpoints.saved_shapes(manager, step).get("neighbours", ((0,), ""))[0][0]
    except checkpoints.CheckpointError as e:
      raise EvalError(f"--workdir={workdir}: {e}") from None
    init_fn = lambda: training.init_state(gan, config, num_examples)
    replicated = parallel.replicated(parallel.make_mesh())
    try:
      state = checkpoints.restore(manager, checkpoints.abstract_like(jax.eval_shape(init_fn), replicated), step)
    except checkpoints.CheckpointError as e:
      raise EvalError(f"--workdir={workdir}: {e}") from None
  finally:
    manager.close()
  initial = jax.jit(init_fn, out_shardings=replicated)()
  return Run(config, gan, step, state["discriminator"], initial["discriminator"], state)


def _num_labels(workdir: str) -> int:
  """Labels a semi-supervised run trained on, from the subset it saved (0 for other runs)."""
  path = os.path.join(workdir, training.LABELLED_SUBSET_FILE)
  if not os.path.isfile(path):
    return 0
  with open(path) as f:
    return int(json.load(f)["num_labels"])


def evaluate_workdir(workdir: str, step: int | None = None, *, features: str | None = None,
                     num_clusters: int | None = None, validation: bool = False, write: bool = True,
                     generation_samples: int | None = None) -> dict[str, Any]:
  """Evaluates checkpoint `step` (default: the latest) of the run in `workdir`.

  Args:
    workdir: a directory written by `train.py` (config.json and checkpoints/).
    step: which checkpoint.
    features: a representation name overriding both `kmeans_features` and `probe_features`
      of `config.evals.representation`; its results go to `eval/step_<step>_<features>/`
      so the default's stay.
    num_clusters: k of k-means, overriding the config (needed for unlabelled data).
    validation: fit on 80% of the training split and score on the other 20% (stratified),
      never reading the test split: for choosing a recipe. Results go to `..._validation/`.
    write: write metrics.json and the plots (False: only return the metrics).
    generation_samples: generated images for the generation metrics, overriding
      `config.evals.generation.num_samples` (0: none).
  Returns:
    {"step", "dataset", "representations": {row: evaluate() result}, "protocol"}, and with
    generation metrics "generation": {"ema_generator": scores, "real_floor": the scores of real
    images of another split (the test split; the floor)},
    each with its protocol (`evaluation.generation.score`).
  """
  config = load_config(workdir)
  try:  # Settings are checked before the (slower) restore.
    settings = representation.get_config(config)
  except ValueError as e:
    raise EvalError(f"{os.path.join(workdir, 'config.json')}: {e}") from None
  if num_clusters is not None:
    if num_clusters <= 0:
      raise EvalError(f"--num_clusters={num_clusters} must be positive")
    settings.num_clusters = num_clusters
  if features is not None:
    settings.kmeans_features = settings.probe_features = features
    try:
      representation.check_config(settings)
    except ValueError:
      raise EvalError(f"--features={features!r}; allowed: "
                      f"{', '.join(representation.features_lib.REPRESENTATIONS)}") from None
  try:
    generation_settings = generation.get_config(config)
  except ValueError as e:
    raise EvalError(f"{os.path.join(workdir, 'config.json')}: {e}") from None
  if generation_samples is not None:
    if generation_samples < 0:
      raise EvalError(f"--generation_samples={generation_samples} must be >= 0 (0: no generation metrics)")
    generation_settings.num_samples = generation_samples
    try:  # More samples than 0 may need what the config left unset (e.g. the Inception weights).
      generation.check_config(generation_settings)
    except ValueError as e:
      raise EvalError(f"--generation_samples={generation_samples}: {e}") from None
  config, gan, step, trained, initial, state = load_run(workdir, step, config)

  try:
    evaluator = representation.make_evaluator(config, settings, gan.discriminator, initial, validation=validation,
                                              num_labels=_num_labels(workdir))
  except ValueError as e:  # Missing data, or unlabelled data without num_clusters.
    raise EvalError(str(e).replace("set config.evals.representation.num_clusters",
                                   "pass --num_clusters (or set config.evals.representation.num_clusters)")) from None
  train, test = evaluator.train, evaluator.test
  row_features = {"gan_discriminator": evaluator.features(trained),
                  "random_discriminator": evaluator.features(initial),
                  "raw_pixels": evaluator.raw_pixel_features()}
  results = {row: evaluator.evaluate_features(x) for row, x in row_features.items()}
  metrics = {
      "step": int(step),
      "dataset": config.data.name,
      "representations": results,
      "protocol": {
          "kmeans_features": settings.kmeans_features,
          "probe_features": settings.probe_features,
          "train_split": train.name, "train_size": len(train),
          "test_split": test.name, "test_size": len(test),
          "feature_dim": {row: r["feature_dim"] for row, r in results.items()},
          "probe_feature_dim": {row: r["linear_probe"]["feature_dim"] for row, r in results.items()
                                if "linear_probe" in r},
          "kmeans": {"k": evaluator.num_clusters, "n_init": settings.n_init, "whiten": settings.whiten,
                     "fit_on": train.name, "scored_on": test.name, "seed": settings.seed},
          "linear_probe": {"objective": "multinomial logistic regression, L2 chosen on validation",
                           "l2_grid": list(linear_probe.DEFAULT_L2_GRID), "validation_fraction": 0.2,
                           "seed": settings.seed} if settings.probe and evaluator.labelled else None,
          "knn": {"k": min(protocol.KNN_K, len(train)), "metric": "cosine", "features": "the probe's, standardised",
                  "fit_on": train.name, "scored_on": test.name} if settings.probe and evaluator.labelled else None,
          "random_discriminator_seed": config.seed,
      },
  }
  # GAN-native heads: after the feature rows in the table, scored on the same test split.
  heads = evaluator.head_rows(trained, state.get("d_ema_params"), representation.refit_current(state))
  metrics["representations"] = {"gan_discriminator": results["gan_discriminator"], **heads, **results}
  if generation_settings.num_samples and not validation:
    scorer = generation.make_evaluator(config, generation_settings, train if settings.train_split == "train" else None)
    generate_fn = training.make_generate_fn(gan, config.seed, generation_settings.batch_size)
    metrics["generation"] = {"ema_generator": scorer.run(generate_fn(state))}
    if (floor := scorer.floor()) is not None:
      metrics["generation"]["real_floor"] = floor
  if write:
    name = f"step_{step}" + (f"_{features}" if features else "") + ("_validation" if validation else "")
    out = os.path.join(workdir, "eval", name)
    files.write_json(os.path.join(out, "metrics.json"), metrics)
    if "categorical_code" in heads:
      report.save_contingency_png(os.path.join(out, "contingency_categorical_code.png"),
                                  heads["categorical_code"]["code"]["contingency"],
                                  f"categorical code, step {step}: argmax Q(c | x) on test")
    for row, row_x in row_features.items():
      train_x, test_x = row_x["kmeans"]
      if "contingency" in results[row]["kmeans"]:
        report.save_contingency_png(os.path.join(out, f"contingency_{row}.png"),
                                    results[row]["kmeans"]["contingency"], f"{row}, step {step}: k-means on test")
      described = row if row == "raw_pixels" else f"{row} ({settings.kmeans_features})"
      report.save_embedding_png(os.path.join(out, f"embedding_{row}.png"), train_x, test_x, test.labels,
                                f"{described}, step {step}: PCA of test features")
  return metrics
