"""The evaluation of a restored run, what `eval.py` prints and writes.

`runs.evaluate_workdir(workdir)` restores a checkpoint (the one module where training and
evaluation meet) and calls `evaluate_run`, which evaluates the discriminator beside the
controls (`representation.ROWS`) and writes `workdir/eval/step_<step>/`: `metrics.json`,
and for each row `contingency_<row>.png` (classes x k-means clusters) and
`embedding_<row>.png` (test features on two principal components, coloured by class).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import ml_collections
import numpy as np

from gan_jax import files
from gan_jax.evaluation import generation
from gan_jax.evaluation import linear_probe
from gan_jax.evaluation import protocol
from gan_jax.evaluation import report
from gan_jax.evaluation import representation


class EvalError(ValueError):
  """The workdir, step or settings asked for cannot be evaluated; the message says why."""


def eval_settings(config: ml_collections.ConfigDict, config_path: str, *, features: str | None = None,
                  num_clusters: int | None = None, generation_samples: int | None = None):
  """(representation settings, generation settings) of a run's config with eval.py's
  overrides, checked before the (slower) restore; EvalError naming what is unusable."""
  try:
    settings, generation_settings = representation.get_config(config), generation.get_config(config)
  except ValueError as e:
    raise EvalError(f"{config_path}: {e}") from None
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
  if generation_samples is not None:
    if generation_samples < 0:
      raise EvalError(f"--generation_samples={generation_samples} must be >= 0 (0: no generation metrics)")
    generation_settings.num_samples = generation_samples
    try:  # More samples than 0 may need what the config left unset (e.g. the Inception weights).
      generation.check_config(generation_settings)
    except ValueError as e:
      raise EvalError(f"--generation_samples={generation_samples}: {e}") from None
  return settings, generation_settings


def evaluate_run(run, settings: ml_collections.ConfigDict, generation_settings: ml_collections.ConfigDict, *,
                 generate_fn: Callable[[dict[str, Any]], Any] | None = None, num_labels: int = 0,
                 validation: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
  """(metrics, the feature rows' features) of a restored `run` (`runs.Run`): its
  discriminator, the controls and the GAN-native heads under `settings`, and with
  `generate_fn` (`sampling.make_generate_fn`) the EMA generator's generation metrics."""
  try:
    evaluator = representation.make_evaluator(run.config, settings, run.gan.discriminator, run.initial_discriminator,
                                              validation=validation, num_labels=num_labels)
  except ValueError as e:  # Missing data, or unlabelled data without num_clusters.
    raise EvalError(str(e).replace("set config.evals.representation.num_clusters",
                                   "pass --num_clusters (or set config.evals.representation.num_clusters)")) from None
  row_features = {"gan_discriminator": evaluator.features(run.discriminator),
                  "random_discriminator": evaluator.features(run.initial_discriminator),
                  "raw_pixels": evaluator.raw_pixel_features()}
  results = {row: evaluator.evaluate_features(x) for row, x in row_features.items()}
  # GAN-native heads: after the feature rows in the table, scored on the same test split.
  heads = evaluator.head_rows(run.discriminator, run.state.get("d_ema_params"), representation.refit_current(run.state))
  metrics = {"step": int(run.step), "dataset": run.config.data.name,
             "representations": {"gan_discriminator": results["gan_discriminator"], **heads, **results},
             "protocol": _protocol(run.config, settings, evaluator, results)}
  if generate_fn is not None and generation_settings.num_samples and not validation:
    scorer = generation.make_evaluator(run.config, generation_settings,
                                       evaluator.train if settings.train_split == "train" else None)
    metrics["generation"] = {"ema_generator": scorer.run(generate_fn(run.state))}
    if (floor := scorer.floor()) is not None:
      metrics["generation"]["real_floor"] = floor
  return metrics, {"features": row_features, "test_labels": evaluator.test.labels}


def _protocol(config, settings, evaluator, results) -> dict[str, Any]:
  """What metrics.json says of how the rows were computed."""
  train, test, labelled = evaluator.train, evaluator.test, settings.probe and evaluator.labelled
  return {
      "kmeans_features": settings.kmeans_features,
      "probe_features": settings.probe_features,
      "train_split": train.name, "train_size": len(train),
      "test_split": test.name, "test_size": len(test),
      "feature_dim": {row: r["feature_dim"] for row, r in results.items()},
      "probe_feature_dim": {row: r["linear_probe"]["feature_dim"] for row, r in results.items()
                            if "linear_probe" in r},
      "kmeans": {"k": evaluator.num_clusters, "n_init": settings.n_init, "whiten": settings.whiten,
                 "fit_on": train.name, "scored_on": test.name, "seed": representation.SEED},
      "linear_probe": {"objective": "multinomial logistic regression, L2 chosen on validation",
                       "l2_grid": list(linear_probe.DEFAULT_L2_GRID), "validation_fraction": 0.2,
                       "seed": representation.SEED} if labelled else None,
      "knn": {"k": min(protocol.KNN_K, len(train)), "metric": "cosine", "features": "the probe's, standardised",
              "fit_on": train.name, "scored_on": test.name} if labelled else None,
      "random_discriminator_seed": config.seed,
  }


def write_report(out: str, metrics: dict[str, Any], extras: dict[str, Any], kmeans_features: str) -> None:
  """metrics.json and the plots of one evaluation into directory `out`."""
  files.write_json(os.path.join(out, "metrics.json"), metrics)
  step, rows = metrics["step"], metrics["representations"]
  if "categorical_code" in rows:
    report.save_contingency_png(os.path.join(out, "contingency_categorical_code.png"),
                                rows["categorical_code"]["code"]["contingency"],
                                f"categorical code, step {step}: argmax Q(c | x) on test")
  for row, row_x in extras["features"].items():
    train_x, test_x = row_x["kmeans"]
    if "contingency" in rows[row]["kmeans"]:
      report.save_contingency_png(os.path.join(out, f"contingency_{row}.png"), rows[row]["kmeans"]["contingency"],
                                  f"{row}, step {step}: k-means on test")
    described = row if row == "raw_pixels" else f"{row} ({kmeans_features})"
    report.save_embedding_png(os.path.join(out, f"embedding_{row}.png"), train_x, test_x, extras["test_labels"],
                              f"{described}, step {step}: PCA of test features")


CONTROLS = ("random_discriminator", "raw_pixels")


def summarize(by_kind: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
  """{"<row> (<kind>)": {column: {"mean", "std", "n", "values"}}}: each row of each member
  kind's metrics (`report.COLUMNS`), over the kind's members (one per seed); std with n - 1
  (0 for one seed). A head read from D's EMA also gets a row for the online D, `<row>_online`.
  The controls (random D and raw pixels), the same whatever a member trained, are rows of their
  own, taken from the full recipe's members, last."""
  summary, controls = {}, {}
  for kind, members in by_kind.items():
    rows = [_with_online_rows(m["representations"]) for m in members]
    for row in rows[0]:
      if row in CONTROLS and kind != "full":
        continue
      values = [report.row_values(member_rows[row]) for member_rows in rows]
      columns = {c: stats([v[j] for v in values]) for j, c in enumerate(report.COLUMNS) if values[0][j] is not None}
      (controls if row in CONTROLS else summary)[row if row in CONTROLS else f"{row} ({kind})"] = columns
  return {**summary, **controls}


def _with_online_rows(representations: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
  """`representations` with `<row>_online` after each head row scored on D's EMA too: its
  `<group>_online` results ("classifier_online", "code_online") under their plain names."""
  rows = {}
  for row, result in representations.items():
    rows[row] = result
    online = {group[:-len("_online")]: value for group, value in result.items() if group.endswith("_online")}
    if online:
      rows[f"{row}_online"] = online
  return rows


def stats(values: list[float]) -> dict[str, Any]:
  """{"mean", "std" (with n - 1; 0 for one value), "n", "values"} of one column over seeds."""
  return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
          "n": len(values), "values": [float(v) for v in values]}
