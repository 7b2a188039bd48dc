r"""Trains a GAN.

  python train.py --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan \
      [--config.total_steps=200 ...]

Running it again on the same workdir resumes from the latest checkpoint.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from gan_jax import metric_logging
from gan_jax import training

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples and logs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  metric_logging.configure_cli_logging()
  training.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
