"""Training metrics to TensorBoard event files and to the terminal.

On a terminal a progress bar shows steps/s and the losses; otherwise (batch jobs,
CI) a plain log line is written at every log step.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import time

from absl import logging
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer import record_writer


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
    self._writer = EventFile(os.path.join(workdir, "tensorboard"))
    if progress and sys.stderr.isatty():
      import tqdm
      self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True)
    self._last_step = initial_step

  def write_scalars(self, step: int, metrics: dict[str, float]) -> None:
    if not self._enabled:
      return
    self._writer.write_scalars(step, metrics)
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


class EventFile:
  """A new TensorBoard event file in `logdir`, of scalars, in TensorBoard's record format.

  TensorBoard's own writers (`tf.summary`, and `EventFileWriter`, which reaches for
  `tf.io.gfile`) import TensorFlow, 4 s at every start of train.py; on `mnist_5k` nothing
  else needs it. The records and protos are the `tensorboard` package's, without TensorFlow.
  """

  _made = itertools.count()  # Two files opened in one second by one process get two names, in order.

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(self._made):06d}"
    self._file = open(os.path.join(logdir, name), "wb")
    self._records = record_writer.RecordWriter(self._file)
    self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

  def write_scalars(self, step: int, metrics: dict[str, float]) -> None:
    values = [summary_pb2.Summary.Value(tag=name, simple_value=float(value)) for name, value in metrics.items()]
    self._write(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)))

  def _write(self, event) -> None:
    self._records.write(event.SerializeToString())
    self._file.flush()  # A run that is killed keeps every scalar it logged.

  def close(self) -> None:
    self._file.close()
