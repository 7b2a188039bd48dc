"""The training loop, `train_and_evaluate`: the cadence of logs, samples, checkpoints and
evaluations around the compiled step (`step.make_train_fn`), and what stops it.

The same command on the same workdir resumes exactly: data order and randomness are
functions of `(seed, step)`, and the train state is restored from the latest checkpoint.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from typing import Any, NamedTuple

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from gan_jax import augment
from gan_jax import checkpoints
from gan_jax import data
from gan_jax import files
from gan_jax import metric_logging
from gan_jax import parallel
from gan_jax import population
from gan_jax import refit
from gan_jax import resume
from gan_jax import runs
from gan_jax import sampling
from gan_jax import state as state_lib
from gan_jax import step as step_lib
from gan_jax import terms
from gan_jax import visualize
from gan_jax.evaluation import evaluators

# Fields of the loop's cadence; the *_every must be multiples of config.steps_per_call.
_POSITIVE = ("steps_per_call", "log_every", "save_every", "sample_every", "keep", "num_samples")
_MULTIPLES = ("total_steps", "log_every", "save_every", "sample_every", "eval_every")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field that holds a value training cannot use."""
  state_lib.check_config(config)
  population.check_config(config)
  for field in _POSITIVE:
    if not config[field] > 0:
      raise ValueError(f"config.{field}={config[field]!r} must be positive")
  if config.eval_every < 0:
    raise ValueError(f"config.eval_every={config.eval_every!r} must be >= 0 (0: no evaluation during training)")
  for field in _MULTIPLES:
    if config[field] % config.steps_per_call:
      raise ValueError(f"config.{field}={config[field]} must be a multiple of "
                       f"config.steps_per_call={config.steps_per_call}")
  if not isinstance(config.skip_nonfinite_updates, bool):
    raise ValueError(f"config.skip_nonfinite_updates={config.skip_nonfinite_updates!r} must be True or False")
  nan_step = config.get("debug_nan_step", -1)
  if isinstance(nan_step, bool) or not isinstance(nan_step, int) or nan_step < -1:
    raise ValueError(f"config.debug_nan_step={nan_step!r} must be -1 (off) or a step >= 0")
  evaluators.check_config(config)
  augment.parse_policy(config.augment)


class StopSignals:
  """SIGTERM (a preemption notice) and SIGINT (Ctrl-C) as a request to stop the loop at a
  step that every process agrees on, so that all save that step; `restore()` puts the
  previous handlers back.

  One process: either signal sets a flag, read after each compiled call. Several: the
  step is JAX's preemption sync point (`multihost_utils.reached_preemption_sync_point`),
  which `jax.distributed.initialize` arms with a SIGTERM handler of its own in C++ (a
  Python handler would replace it, so SIGTERM is left alone); SIGINT is passed on to it
  as a SIGTERM. After one Ctrl-C a second one acts as before it (KeyboardInterrupt).
  A signal ignored when training starts (SIG_IGN, as for `nohup` or a background job) stays ignored.
  """

  def __init__(self, step: int):
    self.reason = None  # What asked to stop, for the log.
    self._previous = {}
    self._sync = jax.process_count() > 1
    if self._sync:
      try:  # Also tells the service the step this process starts from.
        multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:
        logging.warning("JAX's preemption service is off (jax_enable_preemption_service=False): SIGTERM and "
                        "SIGINT end this multi-process run without a checkpoint.")
        self._sync = None
        return
    if threading.current_thread() is not threading.main_thread():
      return  # Python lets only the main thread set handlers (a notebook's worker thread, say).
    for signum in (signal.SIGINT,) if self._sync else (signal.SIGTERM, signal.SIGINT):
      # None: a handler set outside Python, which Python could not put back.
      if signal.getsignal(signum) not in (signal.SIG_IGN, None):
        self._previous[signum] = signal.signal(signum, self._handle)

  def _handle(self, signum, frame):
    del frame
    self.reason = self.reason or signal.Signals(signum).name
    if signum == signal.SIGINT:  # Someone who presses Ctrl-C twice does not want to wait for the save.
      signal.signal(signum, self._previous[signum])
    if self._sync:
      os.kill(os.getpid(), signal.SIGTERM)

  def requested(self, step: int, steps_per_call: int) -> bool:
    """Whether to stop at `step`; call it after every compiled call, on every process."""
    if self._sync:
      # The service picks one step past the furthest any process has reported and says
      # yes at that step only. Reporting every step of the call in turn (Orbax's own
      # reports are turned off, `checkpoints.make_manager`) makes every process meet it
      # in the same call, whose last step is a multiple of steps_per_call, as resuming needs.
      if any(multihost_utils.reached_preemption_sync_point(s) for s in range(step - steps_per_call + 1, step + 1)):
        self.reason = "JAX's preemption sync point"  # Whichever process got the signal.
        return True
      return False
    return self.reason is not None

  def restore(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}


def _finite_mean(values: np.ndarray) -> float:
  """Mean of the finite values (NaN if none): a skipped update's metrics leave the average alone."""
  finite = values[np.isfinite(values)]
  return float(finite.mean()) if finite.size else float("nan")


def _log_summary(manager, pending_metrics: list, step: int, skip_nonfinite: bool,
                 names: list[str | None]) -> list[dict[str, float]]:
  """The metrics of the steps since the last log, brought to the host, checked and averaged,
  one dict per member (`names`; [None] for a single run, which names none).

  Checking them before each save keeps a diverged state out of the checkpoints (non-finite
  parameters show in the parameter norms and the losses). A skipped update's losses are
  non-finite by nature; with skipping, the parameter norms must stay finite.
  """
  stacked = {k: np.concatenate([m[k] for m in jax.device_get(pending_metrics)]) for k in pending_metrics[0]}
  summaries = []
  for i, name in enumerate(names):
    steps = {k: v[:, i] for k, v in stacked.items()}
    member = f" of member {name}" if name else ""
    checked = [k for k in steps if k.endswith("_param_norm")] if skip_nonfinite else list(steps)
    bad = [k for k in checked if not np.isfinite(steps[k]).all()]
    if bad:
      last = manager.latest_step()
      raise FloatingPointError(
          f"non-finite {', '.join(bad)}{member} between steps {step - len(steps[bad[0]])} and {step}; "
          + (f"the last checkpoint is step {last}" if last is not None else "no checkpoint was written")
          + ("" if skip_nonfinite else "; config.skip_nonfinite_updates=True skips such updates"))
    skipped = {k: int(steps[k].sum()) for k in ("d_skipped", "g_skipped") if k in steps}
    if any(skipped.values()):
      logging.warning("Skipped %d discriminator and %d generator update(s)%s with non-finite losses or "
                      "gradients between steps %d and %d.", skipped["d_skipped"], skipped["g_skipped"], member,
                      step - len(steps["g_skipped"]), step)
    summaries.append({k: skipped[k] if k in skipped else _finite_mean(v) for k, v in steps.items()})
  return summaries


def _restore_or_init(config, workdir: str, manager, init_fn, abstract_state, num_examples: int, sharding):
  """The train state to start from: the latest checkpoint's if it fits the config, else a fresh one."""
  if (latest := manager.latest_step()) is not None:
    resume.check_resumable(config, workdir, manager, latest, abstract_state, num_examples)
    state = checkpoints.restore(manager, abstract_state, latest)
    logging.info("Resumed from %s at step %d.", manager.directory, latest)
  else:
    state = jax.jit(init_fn, out_shardings=sharding)()
  step = int(np.asarray(state["step"]).flat[0])
  if step % config.steps_per_call:
    raise ValueError(f"the checkpoint is at step {step}, which config.steps_per_call="
                     f"{config.steps_per_call} does not divide; resume with a steps_per_call that divides it")
  return state


class _Member(NamedTuple):
  """What the loop keeps of one member: its name (None alone), config and folder."""
  name: str | None
  config: ml_collections.ConfigDict
  workdir: str


def _members(config, workdir: str) -> list[_Member]:
  """The population's members, each with the config of a single run with its seed and its own
  folder (`runs.member_dir`: the workdir itself for a single run)."""
  alone = population.alone(config)
  return [_Member(None if alone else m.name, population.member_config(config, m), runs.member_dir(workdir, config, m))
          for m in population.members(config)]


def _make_evals(members: list[_Member], gan, train_data, num_examples: int, num_labels: int, replicated):
  """`run_evals(member index, member state) -> scalars`: the numbers of the evaluators
  `config.evals` names (`runs.make_evaluators`, as eval.py builds them), under their keys.

  Built before training, so that a missing split or unlabelled data fails now rather than
  at step eval_every; the controls are evaluated at the first evaluation (once per seed),
  the domain classifier and the reference statistics of the generation metrics prepared now.
  """
  train = train_data if jax.process_count() == 1 else None
  by_seed = {}  # One set per seed: the random D, a control, is the seed's.
  for member in members:
    if member.config.seed not in by_seed:
      init_fn = functools.partial(state_lib.init_state, gan, member.config, num_examples)
      initial = jax.jit(init_fn, out_shardings=replicated)()["discriminator"]
      by_seed[member.config.seed] = runs.make_evaluators(member.config, gan, initial, train=train,
                                                         num_labels=num_labels)

  def run_evals(index: int, state) -> dict[str, float]:
    start = time.perf_counter()
    scalars = evaluators.numbers(evaluators.run(by_seed[members[index].config.seed], state))
    scalars["eval_seconds"] = time.perf_counter() - start
    return scalars

  return run_evals


def _sampler(gan, member: _Member, replicated, is_main_process: bool):
  """`save_samples(state, step)`: the EMA generator's grid on the run's fixed latents, as a PNG."""
  sample_fn = sampling.make_sample_fn(gan, member.config.seed)
  sample_z, grid_columns = sampling.grid_latents(state_lib.seed_keys(member.config.seed)["sample"],
                                                 member.config.num_samples, gan)
  sample_z = jax.device_put(sample_z, replicated)

  def save_samples(state, step: int) -> None:
    images = data.to_uint8(sample_fn(state, sample_z))  # On every process: a global computation.
    if is_main_process:
      visualize.save_png(os.path.join(member.workdir, "samples", f"step_{step}.png"),
                         visualize.image_grid(images, grid_columns or None))
  return save_samples


def _labelled_subsets(members: list[_Member], train_data, sharding) -> tuple[jax.Array, ...]:
  """(images, labels) of the members' labelled subsets, stacked along the member axis, on the
  devices; () without `config.kplus1`."""
  if "kplus1" not in members[0].config:
    return ()
  train = train_data if jax.process_count() == 1 else None
  subsets = [runs.load_labelled_subset(m.config, m.workdir, train) for m in members]
  arrays = [(s.images, s.labels) for s in subsets]
  return tuple(jax.device_put(np.stack(x), sharding) for x in zip(*arrays))


def _training_set(config: ml_collections.ConfigDict, mesh):
  """(this process's share of the training split, the whole split as one uint8 array on the devices)."""
  # The training set lives on the devices (uint8), split over them along the data axis:
  # each process reads its own share, and each step's batch is a gather by
  # `data.batch_indices` from the global array (XLA gathers on the device holding each
  # image and all-reduces the batch), with no per-step host-to-device copy.
  train_data = data.load_process_share(config.data, "train", image_size=config.image_size,
                                       channels=config.channels, mesh=mesh)
  images_u8 = parallel.host_to_global(train_data.images, parallel.batch_sharded(mesh))
  if config.n_dis * config.batch_size > images_u8.shape[0]:
    raise ValueError(f"config.batch_size={config.batch_size} x config.n_dis={config.n_dis} images per step "
                     f"exceed the {images_u8.shape[0]} training images of {train_data.name}")
  return train_data, images_u8


def _log_objective(config) -> None:
  """What each player minimises, a line each, and what each ablation of a population zeroes."""
  for line in terms.objective(config):
    logging.info("%s", line)
  full = terms.weights(config)
  for member in {m.kind: m for m in population.members(config) if m.ablation}.values():
    zeroed = [name for name, w in population.member_weights(config, member).items() if w == 0 and full[name]]
    logging.info("Members %s: the same sums with %s at weight 0.", member.kind, ", ".join(zeroed))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       resume_command: str | None = None) -> dict[str, Any]:
  """Trains to `config.total_steps`, resuming from the latest checkpoint in `workdir`.

  Writes `workdir/checkpoints/` (Orbax), `workdir/samples/step_<step>.png` (EMA
  generator on a fixed noise), `workdir/tensorboard/` and `workdir/config.json`.
  Every `config.eval_every` steps (and at the end) the evaluators `config.evals` names log
  their numbers to TensorBoard under the keys eval.py writes (`evaluation.evaluators`):
  representation/<row>/<metric> (`config.evals.representation`) and, with
  `config.evals.generation.num_samples`, generation/ema_generator/<metric> (FID, KID, IS,
  precision, recall of the EMA generator) beside generation/real_floor/<metric>. A
  population (`config.population`) keeps one checkpoint of all its members, and each
  member's samples, TensorBoard scalars and labelled subset in `workdir/members/<name>/`.

  SIGTERM or SIGINT (`StopSignals`) stops training after the current compiled call: a
  checkpoint is written at that step (off the `save_every` grid if need be) and waited
  for, one log line names the step and how to resume (`resume_command`, the command line
  that started the run, if given), and the state at that step is returned. The previous
  signal handlers are back when this returns.
  Returns the final train state.
  """
  validate_config(config)
  is_main_process = jax.process_index() == 0
  members = _members(config, workdir)
  if not population.alone(config) and jax.process_count() > 1:
    raise ValueError(f"config.population makes {len(members)} members, which train in one process (with all its "
                     f"devices); this run has {jax.process_count()}: train a population without --distributed")
  mesh = parallel.make_mesh(len(members))
  parallel.check_batch_size(config.batch_size, mesh)
  train_data, images_u8 = _training_set(config, mesh)
  os.makedirs(workdir, exist_ok=True)  # Only now: a config or dataset that fails leaves no trace.
  num_examples = images_u8.shape[0]
  by_member = parallel.by_member(mesh)
  logging.info("Training %s on %s: %d images %s (%d in this process), %d device(s).",
               "one run" if population.alone(config) else f"{len(members)} members", train_data.name, num_examples,
               train_data.images.shape[1:], len(train_data), jax.device_count())
  _log_objective(config)
  gan = state_lib.make_gan(config)
  init_fn = functools.partial(population.init_state, gan, config, num_examples=num_examples)
  manager = checkpoints.make_manager(workdir, keep=config.keep)
  writers = []
  try:  # From here on, an error closes the manager (and the writers) on its way out.
    state = _restore_or_init(config, workdir, manager, init_fn,
                             checkpoints.abstract_like(jax.eval_shape(init_fn), by_member), num_examples, by_member)
    step = int(np.asarray(state["step"]).flat[0])
    labelled = _labelled_subsets(members, train_data, by_member)
    run_evals = None
    if config.eval_every and step < config.total_steps:
      run_evals = _make_evals(members, gan, train_data, num_examples, labelled[1].shape[-1] if labelled else 0,
                              parallel.replicated(mesh))
    writers = [metric_logging.MetricWriter(m.workdir, total_steps=config.total_steps, initial_step=step,
                                           enabled=is_main_process, name=m.name, progress=i == 0)
               for i, m in enumerate(members)]
    if is_main_process:  # Every check passed: the config that trains is the one saved.
      files.write_json(os.path.join(workdir, runs.CONFIG_FILE), config.to_dict())
    if step >= config.total_steps:
      logging.info("Step %d reached config.total_steps=%d: nothing to train.", step, config.total_steps)
    train_fn = functools.partial(step_lib.make_train_fn(gan, config, mesh, num_examples), images_u8=images_u8,
                                 weights=jax.device_put(population.weights(config), by_member),
                                 labelled_u8=labelled[0] if labelled else None, labels=labelled[1] if labelled else None)
    refit_fn = refit.make_refit_fn(gan, config, mesh) if terms.block(config, "infogan.refit") is not None else None
    samplers = [_sampler(gan, m, parallel.replicated(mesh), is_main_process) for m in members]
    state = _train(config, state, train_fn, refit_fn and functools.partial(refit_fn, images_u8=images_u8), run_evals,
                   samplers, manager, writers, resume_command)
  finally:
    closing = [("the checkpoint manager", manager.close)] + [("a TensorBoard writer", w.close) for w in writers]
    for name, close in closing:
      try:  # On the way out of an error (a full disk, say), that error is the one to report.
        close()
      except Exception as e:  # pylint: disable=broad-except
        logging.error("Closing %s failed: %s", name, e)
  return state


def _train(config, state, train_fn, refit_fn, run_evals, samplers, manager, writers, resume_command):
  """The loop from the state's step to `config.total_steps`, or to a stop signal; the final state."""
  step = int(np.asarray(state["step"]).flat[0])
  names = [w.name for w in writers]
  first_call_start = time.perf_counter()
  last_log_step, last_log_time = step, None
  pending_metrics = []  # One dict of device arrays per call since the last log.
  stop = StopSignals(step)
  try:
    while step < config.total_steps:
      state, metrics = train_fn(state)
      pending_metrics.append(metrics)
      step += config.steps_per_call
      if last_log_time is None:  # First call: report compilation apart from throughput.
        jax.block_until_ready(state)
        logging.info("First call (compilation included): %.1f s.", time.perf_counter() - first_call_start)
        last_log_step, last_log_time = step, time.perf_counter()
      is_last = step == config.total_steps
      stopping = stop.requested(step, config.steps_per_call) and not is_last
      if step % config.log_every == 0 or step % config.save_every == 0 or is_last or stopping:
        checkpoints.check(manager)  # A failed write (a full disk) stops training here, before more is lost.
        summaries = _log_summary(manager, pending_metrics, step, config.skip_nonfinite_updates, names)
        pending_metrics = []  # Metrics reach the host only here, every step's at once.
        for writer, summary in zip(writers, summaries):
          if step > last_log_step:
            summary["steps_per_sec"] = (step - last_log_step) / (time.perf_counter() - last_log_time)
            summary["images_per_sec"] = summary["steps_per_sec"] * config.n_dis * config.batch_size
          writer.write_scalars(step, summary)
        last_log_step, last_log_time = step, time.perf_counter()
      if is_last and refit_fn is not None:
        state = _refit(config, state, refit_fn, writers, step)
      if step % config.save_every == 0 or is_last or (stopping and step not in manager.all_steps()):
        checkpoints.save(manager, step, state)
      if stopping:
        checkpoints.wait(manager)
        logging.info("Stopped by %s: the checkpoint at step %d is complete in %s; %s", stop.reason, step,
                     manager.directory, f"resume with the same command: {resume_command}" if resume_command
                     else "train again on the same workdir to resume")
        break
      for i, save_samples in enumerate(samplers):
        if step % config.sample_every == 0 or is_last:
          save_samples(population.unstack(state, i), step)
        if run_evals is not None and (step % config.eval_every == 0 or is_last):
          scalars = run_evals(i, population.unstack(state, i))
          writers[i].write_scalars(step, scalars)
          last_log_time += scalars["eval_seconds"]  # Evaluation time is not training throughput.
    checkpoints.wait(manager)
  finally:
    stop.restore()
  return state


def _refit(config, state, refit_fn, writers, step: int):
  """The state with Q's heads refitted on the frozen D (`refit.make_refit_fn`), logged."""
  start = time.perf_counter()
  state, head_losses = refit_fn(state)
  head_losses = np.asarray(jax.device_get(head_losses)).reshape(len(writers), -1)
  for writer, losses in zip(writers, head_losses):
    logging.info("Refitted %d Q heads%s on the frozen discriminator in %.1f s; their SCAN losses: %s",
                 config.infogan.refit.heads, f" of {writer.name}" if writer.name else "",
                 time.perf_counter() - start, " ".join(f"{v:.3f}" for v in losses))
    writer.write_scalars(step, {"refit_seconds": time.perf_counter() - start, "refit_loss_min": float(losses.min())})
  return state
