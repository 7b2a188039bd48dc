r"""SNGAN on CIFAR-10: the ResNet generator and spectrally normalised discriminator of
Miyato et al. 2018 (Table 4), with their hinge-loss recipe.

  python train.py --config=configs/cifar10_sngan.py --workdir=runs/cifar10_sngan
  python train.py --config=configs/cifar10_sngan.py:runlocal --workdir=/tmp/cifar10_sngan_smoke

Needs the tfds `cifar10` data (README "Data") and a GPU for its 50k generator updates;
`runlocal` is a 10-step CPU check of the same model. Not measured here; published anchor: FID
21.7 (the SNGAN paper; docs/results.md).
"""

import ml_collections

from configs import base
from configs import cifar10_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags = base.parse_arg(arg, ("runlocal",))
  config = cifar10_dcgan.get_config("runlocal" if "runlocal" in flags else None)
  config.model.name = "resnet"
  config.model.generator_features = 256
  config.model.discriminator_features = 128
  config.adversarial.loss = "hinge"
  config.n_dis = 5
  config.ema_decay = 0.9999
  for opt in (config.g_optimizer, config.d_optimizer):
    opt.update(b1=0.0, b2=0.9, schedule="linear")
  if "runlocal" in flags:
    config.total_steps = 10
    config.log_every = config.save_every = config.sample_every = 5
  else:
    config.total_steps = 50_000
  return config
