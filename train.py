r"""Trains a GAN.

  python train.py --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan \
      [--config.total_steps=200 ...]

Running it again on the same workdir resumes from the latest checkpoint.
"""

import logging as py_logging

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from gan_jax import training

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples and logs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.INFO)
  # Orbax reports every save stage at INFO; keep its warnings, drop the chatter.
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname)
  training.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
