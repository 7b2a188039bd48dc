r"""Trains a GAN.

  python train.py --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan \
      [--config.total_steps=200 ...]

Running it again on the same workdir resumes from the latest checkpoint. It trains on
every device it sees; on several hosts, start the same command on each with
`--distributed` (docs/distributed.md). SIGTERM (preemption) or Ctrl-C saves a checkpoint
at the step reached, logs the command that resumes from it, and exits with status 0.
"""

import os
import shlex
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from gan_jax import checkpoints
from gan_jax import cli
from gan_jax import metric_logging
from gan_jax import parallel
from gan_jax import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples and logs.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "One process of a multi-host job: join it with jax.distributed.initialize(). "
    "The cluster is detected on Cloud TPU, SLURM and Open MPI; elsewhere give the three flags below.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with --distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (with --distributed).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (with --distributed).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  metric_logging.configure_cli_logging()
  cluster = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if not _DISTRIBUTED.value and any(v is not None for v in cluster):
    sys.exit("train.py: --coordinator_address, --num_processes and --process_id need --distributed")
  if _DISTRIBUTED.value:
    try:
      parallel.initialize_distributed(*cluster)
    except (ValueError, RuntimeError) as e:
      sys.exit(f"train.py: --distributed: {str(e).splitlines()[0]} (JAX detects Cloud TPU, SLURM and Open MPI; "
               "elsewhere pass --coordinator_address, --num_processes and --process_id)")
  try:
    loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value, resume_command=shlex.join(sys.orig_argv))
  except (ValueError, FloatingPointError, checkpoints.CheckpointError) as e:
    if not _raised_by_gan_jax(e):
      raise
    print(f"train.py: {e}", file=sys.stderr, flush=True)
    if isinstance(e, checkpoints.CheckpointError):
      # TensorStore may still be reading or writing in its own threads; nothing is left to
      # save or flush, so do not wait for them at shutdown.
      os._exit(1)
    sys.exit(1)


def _raised_by_gan_jax(e: BaseException) -> bool:
  """Whether `e` comes from one of gan_jax's own checks: a message for the user, said in one
  line. The same exception raised inside a library is a bug to report: its traceback stays."""
  if getattr(e, "__notes__", None) or type(e.__cause__).__name__ == "UnfilteredStackTrace":
    return False  # It crossed a JAX transformation, which hides the frames it came from.
  tb = e.__traceback__
  while tb.tb_next is not None:
    tb = tb.tb_next
  package = os.path.dirname(os.path.abspath(loop.__file__))
  return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(package + os.sep)


def _parse_flags(argv: list[str]) -> list[str]:
  try:  # Before absl, whose config flag says these mistakes with a traceback.
    cli.check_config_args(argv[1:])
    if (workdir := cli.flag_value(argv[1:], "workdir")) is not None:
      cli.check_workdir(workdir)
  except cli.CommandLineError as e:
    sys.exit(f"train.py: {e}")
  return app.parse_flags_with_usage(argv)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
