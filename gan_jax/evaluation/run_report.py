"""The evaluation of a restored run, what `eval.py` prints and writes.

`runs.evaluate_workdir(workdir)` restores a checkpoint (the one module where training and
evaluation meet), runs the evaluators `config.evals` names on it (`evaluators.run`), and writes
`workdir/eval/step_<step>/`: `metrics.json`, the flat `(key, value)` stream as it came, and
each evaluator's plots (`write_report`); for a population, a summary of its members (`summarize`).
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
import numpy as np

from gan_jax import files
from gan_jax.evaluation import evaluators
from gan_jax.evaluation import features as features_lib
from gan_jax.evaluation import report


class EvalError(ValueError):
  """The workdir, step or settings asked for cannot be evaluated; the message says why."""


def eval_settings(config: ml_collections.ConfigDict, config_path: str, *, features: str | None = None,
                  num_clusters: int | None = None, generation_samples: int | None = None) -> ml_collections.ConfigDict:
  """A run's `config.evals` with eval.py's overrides, every block checked before the (slower)
  restore; EvalError naming what is unusable."""
  try:
    evaluators.check_config(config)
  except ValueError as e:
    raise EvalError(f"{config_path}: {e}") from None
  evals = ml_collections.ConfigDict(config.evals.to_dict())
  overrides = {"--num_clusters": ("representation", num_clusters), "--features": ("representation", features),
               "--generation_samples": ("generation", generation_samples)}
  for flag, (name, value) in overrides.items():
    if value is not None and name not in evals:
      raise EvalError(f"{flag}={value!r}: {config_path} has no config.evals.{name}")
  if num_clusters is not None:
    if num_clusters <= 0:
      raise EvalError(f"--num_clusters={num_clusters} must be positive")
    evals.representation.num_clusters = num_clusters
  if features is not None:
    if features not in features_lib.REPRESENTATIONS:
      raise EvalError(f"--features={features!r}; allowed: {', '.join(features_lib.REPRESENTATIONS)}")
    evals.representation.kmeans_features = evals.representation.probe_features = features
  if generation_samples is not None:
    if generation_samples < 0:
      raise EvalError(f"--generation_samples={generation_samples} must be >= 0 (0: no generation metrics)")
    evals.generation.num_samples = generation_samples
    try:  # More samples than 0 may need what the config left unset (e.g. the Inception weights).
      evaluators.settings(evals, "generation")
    except ValueError as e:
      raise EvalError(f"--generation_samples={generation_samples}: {e}") from None
  return evals


def write_report(out: str, metrics: dict[str, Any], run_evaluators: dict[str, Any], step: int) -> None:
  """metrics.json (the flat `metrics`) of one evaluation into directory `out`, and the plots of
  each evaluator that draws its last run (`write_plots`)."""
  files.write_json(os.path.join(out, "metrics.json"), metrics)
  for evaluator in run_evaluators.values():
    if hasattr(evaluator, "write_plots"):
      evaluator.write_plots(out, step)


CONTROLS = ("random_discriminator", "raw_pixels")


def summarize(by_kind: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
  """{"<row> (<kind>)": {column: {"mean", "std", "n", "values"}}}: each row of the table
  (`report.rows`) of each member kind's flat metrics, over the kind's members (one per seed); std
  with n - 1 (0 for one seed). The controls (random D and raw pixels), the same whatever a member
  trained, are rows of their own, taken from the full recipe's members, last."""
  summary, controls = {}, {}
  for kind, members in by_kind.items():
    tables = [report.rows(m) for m in members]
    for row, columns in tables[0].items():
      if row in CONTROLS and kind != "full":
        continue
      values = {c: stats([table[row][c] for table in tables]) for c in report.COLUMNS if c in columns}
      (controls if row in CONTROLS else summary)[row if row in CONTROLS else f"{row} ({kind})"] = values
  return {**summary, **controls}


def summarize_game(by_kind: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
  """{kind: {column: {"mean", "std", "n", "values"}}}: the game evaluator's row (`report.GAME_COLUMNS`)
  of each member kind, over its members; kinds whose members lack it are left out."""
  summary = {}
  for kind, members in by_kind.items():
    tables = [report.rows(m, report.GAME_KEYS).get(report.GAME_ROW) for m in members]
    if all(tables):
      summary[kind] = {c: stats([table[c] for table in tables]) for c in tables[0]}
  return summary


def stats(values: list[float]) -> dict[str, Any]:
  """{"mean", "std" (with n - 1; 0 for one value), "n", "values"} of one column over seeds."""
  return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
          "n": len(values), "values": [float(v) for v in values]}
