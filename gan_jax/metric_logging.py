"""Training metrics to TensorBoard event files and to the terminal.

On a terminal a progress bar shows steps/s and the losses; otherwise (batch jobs,
CI) a plain log line is written at every log step.
"""

from __future__ import annotations

import os
import sys

from absl import logging

from gan_jax import parallel


def configure_cli_logging() -> None:
  """INFO logs for the command-line entry points, without Orbax's per-save chatter (its
  warnings stay) or JAX's note that a platform it probes for (TPU, GPU) is absent."""
  import logging as py_logging
  logging.set_verbosity(logging.INFO)
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname)
  py_logging.getLogger("jax._src.xla_bridge").setLevel(py_logging.WARNING)


class MetricWriter:
  """Writes scalar metrics to `workdir/tensorboard` and reports progress; `name` (a
  population member's) begins its log lines, and only a writer with `progress` shows a bar."""

  def __init__(self, workdir: str, *, total_steps: int, initial_step: int, enabled: bool = True,
               name: str | None = None, progress: bool = True):
    self._enabled = enabled
    self.name = name
    self._writer = None
    self._bar = None
    if not enabled:
      return
    parallel.hide_accelerators_from_tensorflow()
    import tensorflow as tf
    self._tf = tf
    self._writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
    if progress and sys.stderr.isatty():
      import tqdm
      self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True)
    self._last_step = initial_step

  def write_scalars(self, step: int, metrics: dict[str, float]) -> None:
    if not self._enabled:
      return
    with self._writer.as_default(step=step):
      for name, value in metrics.items():
        self._tf.summary.scalar(name, value)
    self._writer.flush()
    summary = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    if self._bar is not None:
      self._bar.update(step - self._last_step)
      self._bar.set_postfix_str(summary, refresh=True)
    else:
      logging.info("%sstep %d: %s", f"{self.name} " if self.name else "", step, summary)
    self._last_step = step

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
    if self._writer is not None:
      self._writer.close()
