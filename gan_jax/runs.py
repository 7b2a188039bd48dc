"""A train.py workdir: its files, and the run they hold; where training and evaluation meet.

  workdir/config.json            the resolved config of the latest run (`CONFIG_FILE`)
  workdir/labelled_subset.json   the K+1 GAN's labelled images (`LABELLED_SUBSET_FILE`)
  workdir/checkpoints/<step>/    Orbax checkpoints of the train state

`load_run(workdir)` restores a checkpoint with its config, modules and the random control;
`make_evaluators` builds the evaluators `config.evals` names, for training and eval.py alike;
`evaluate_workdir(workdir)` is what eval.py does with them.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, NamedTuple

import jax
import ml_collections

from gan_jax import checkpoints
from gan_jax import data
from gan_jax import files
from gan_jax import parallel
from gan_jax import population
from gan_jax import sampling
from gan_jax import state as state_lib
from gan_jax import terms
from gan_jax.evaluation import evaluators
from gan_jax.evaluation import run_report
from gan_jax.evaluation.run_report import EvalError

CONFIG_FILE = "config.json"
LABELLED_SUBSET_FILE = "labelled_subset.json"


def member_dir(workdir: str, config: ml_collections.ConfigDict, member: population.Member | None) -> str:
  """The folder of a member's own files (samples, tensorboard, labelled subset, evaluations):
  `workdir/members/<name>/` in a population, the workdir itself for a single run."""
  return workdir if population.alone(config) else os.path.join(workdir, "members", member.name)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run saved in `workdir/config.json` (fields declared since at their
  defaults: `terms.complete`)."""
  config_path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise EvalError(f"--workdir={workdir}: no {CONFIG_FILE}, so not a train.py workdir")
  with open(config_path) as f:
    return terms.complete(ml_collections.ConfigDict(json.load(f)))


def load_labelled_subset(config: ml_collections.ConfigDict, workdir: str,
                         train: data.ImageDataset | None = None) -> data.ImageDataset:
  """The labelled training images of a K+1 run, chosen by `config.seed`.

  Their indices in the training split are saved in `workdir/labelled_subset.json` (with
  their labels), so an evaluation or a person can see which labels the run used. A
  resumed run checks that it draws the same subset. `train`: the training split, if loaded.
  """
  kp1 = config.kplus1
  train = train or data.load_split(config.data, "train", image_size=config.image_size, channels=config.channels)
  if train.labels is None:
    raise data.DatasetError(f"config.kplus1.labels_per_class={kp1.labels_per_class}: {train.name} has no labels")
  indices = data.labelled_subset(train.labels, kp1.labels_per_class, config.seed, kp1.num_classes)
  path = os.path.join(workdir, LABELLED_SUBSET_FILE)
  record = {"dataset": train.name, "labels_per_class": kp1.labels_per_class, "seed": config.seed,
            "num_labels": len(indices), "indices": indices.tolist(), "labels": train.labels[indices].tolist()}
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if saved["indices"] != record["indices"] or saved["labels"] != record["labels"]:
      raise ValueError(f"{path} holds another labelled subset than config.seed={config.seed} and "
                       f"config.kplus1.labels_per_class={kp1.labels_per_class} draw from {train.name}; "
                       "the data, seed or labels_per_class changed since this run started")
  elif jax.process_index() == 0:
    files.write_json(path, record)
  return data.ImageDataset(train.images[indices], train.labels[indices], kp1.num_classes,
                           f"{train.name} labelled subset ({len(indices)})")


def num_labels(workdir: str) -> int:
  """Labels a K+1 run trained on, from the subset it saved (0 for other runs)."""
  path = os.path.join(workdir, LABELLED_SUBSET_FILE)
  if not os.path.isfile(path):
    return 0
  with open(path) as f:
    return int(json.load(f)["num_labels"])


class Run(NamedTuple):
  config: ml_collections.ConfigDict  # The run's; a member's is that of a single run with its seed.
  gan: state_lib.GAN
  step: int
  discriminator: Any         # The trained discriminator's variables.
  initial_discriminator: Any  # Its variables at initialisation (the random control).
  state: dict[str, Any]      # The whole restored train state (a member's part of a population's).
  member: population.Member | None = None  # Which member of a population; None for a single run.


def load_runs(workdir: str, step: int | None = None, config: ml_collections.ConfigDict | None = None) -> list[Run]:
  """The run at checkpoint `step` (default: the latest), or each member's of a population.

  The initial variables come from the run's own seed scheme (`state.init_state`), so the
  random control is the network the run (or member) started from. `config`: the run's, if
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
    gan = state_lib.make_gan(config)
    replicated = parallel.replicated(parallel.make_mesh())
    try:
      # The size of the training set, where the state holds a table of neighbours per image.
      num_examples = checkpoints.saved_shapes(manager, step).get("neighbours", ((0, 0), ""))[0][-2]
      init_fn = lambda: population.init_state(gan, config, num_examples)
      state = checkpoints.restore(manager, checkpoints.abstract_like(jax.eval_shape(init_fn), replicated), step)
    except checkpoints.CheckpointError as e:
      raise EvalError(f"--workdir={workdir}: {e}") from None
  finally:
    manager.close()
  initial = jax.jit(init_fn, out_shardings=replicated)()["discriminator"]
  alone = population.alone(config)
  return [Run(population.member_config(config, m), gan, step, part["discriminator"],
              population.unstack(initial, i), part, None if alone else m)
          for i, m in enumerate(population.members(config)) for part in [population.unstack(state, i)]]


def load_run(workdir: str, step: int | None = None, config: ml_collections.ConfigDict | None = None,
             member: str | None = None) -> Run:
  """`load_runs`' run; of a population, the member named `member` (e.g. "seed1-no_contrastive")."""
  loaded = load_runs(workdir, step, config)
  if member is None and loaded[0].member is None:  # A single run.
    return loaded[0]
  names = [run.member.name for run in loaded if run.member is not None]
  if member not in names:
    raise EvalError(f"member={member!r}: {workdir} holds " + (f"the members {', '.join(names)}" if names else
                                                              "a single run; leave member out"))
  return loaded[names.index(member)]


def make_evaluators(config: ml_collections.ConfigDict, gan: state_lib.GAN, initial_discriminator, *,
                    evals: ml_collections.ConfigDict | None = None, train: data.ImageDataset | None = None,
                    num_labels: int = 0, validation: bool = False, plots: bool = False) -> dict[str, Any]:
  """{name: evaluator} of `evals` (default `config.evals`) for a run, or for a population's
  members of one seed (`config` a member's): `evaluators.from_config` with the run's context
  (`evaluators.Context`: D, its initial variables, the EMA generator's sampler of the seed, ...)."""
  context = evaluators.Context(config, gan.discriminator, initial_discriminator,
                               functools.partial(sampling.make_generate_fn, gan, config.seed), train=train,
                               num_labels=num_labels, validation=validation, plots=plots)
  return evaluators.from_config(config.evals if evals is None else evals, context)


def evaluate_workdir(workdir: str, step: int | None = None, *, features: str | None = None,
                     num_clusters: int | None = None, validation: bool = False, write: bool = True,
                     generation_samples: int | None = None) -> dict[str, Any]:
  """Evaluates checkpoint `step` (default: the latest) of the run in `workdir`, as eval.py does.

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
    {"step", "dataset", then every evaluator's `(key, value)` pairs as `evaluators.run` yields
    them: "representation/<row>/<key>", "representation/protocol", "generation/ema_generator/fid",
    "generation/real_floor/fid", ... (docs/evaluation.md)}, as training logs them. For a population:
    {"step", "dataset", "members": {name: that dict of the member}, "summary": `run_report.summarize`
    of them (mean and std over seeds of each member kind's rows)}; each member's own report goes
    to `workdir/members/<name>/eval/`.
  """
  config = load_config(workdir)
  evals = run_report.eval_settings(config, os.path.join(workdir, CONFIG_FILE), features=features,
                                   num_clusters=num_clusters, generation_samples=generation_samples)
  name = "step_{step}" + (f"_{features}" if features else "") + ("_validation" if validation else "")
  by_seed, evaluated, train = {}, {}, None  # A population's members of one seed share their evaluators.
  for run in load_runs(workdir, step, config):
    folder = member_dir(workdir, config, run.member)
    if run.config.seed not in by_seed:
      try:
        if train is None:  # Loaded once, for every evaluator.
          train = data.load_split(config.data, "train", image_size=config.image_size, channels=config.channels)
        by_seed[run.config.seed] = make_evaluators(run.config, run.gan, run.initial_discriminator, evals=evals,
                                                   train=train, num_labels=num_labels(folder), validation=validation,
                                                   plots=write)
      except ValueError as e:  # Missing data, or unlabelled data without num_clusters.
        raise EvalError(str(e).replace("set config.evals.representation.num_clusters", "pass --num_clusters (or "
                                       "set config.evals.representation.num_clusters)")) from None
    metrics = {"step": int(run.step), "dataset": run.config.data.name,
               **dict(evaluators.run(by_seed[run.config.seed], run.state))}
    if write:
      run_report.write_report(os.path.join(folder, "eval", name.format(step=run.step)), metrics,
                              by_seed[run.config.seed], run.step)
    evaluated[run.member] = metrics
  if None in evaluated:
    return evaluated[None]
  by_kind = {}
  for member, member_metrics in evaluated.items():
    by_kind.setdefault(member.kind, []).append(member_metrics)
  first = next(iter(evaluated.values()))
  metrics = {"step": first["step"], "dataset": first["dataset"],
             "members": {member.name: m for member, m in evaluated.items()}, "summary": run_report.summarize(by_kind),
             "game_summary": run_report.summarize_game(by_kind)}
  if write:
    files.write_json(os.path.join(workdir, "eval", name.format(step=first["step"]), "metrics.json"), metrics)
  return metrics
