r"""Semi-supervised CIFAR-10 with 4,000 labels (400 per class): the K+1 GAN of `mnist_ssl` on the
standard CNN of `cifar10_dcgan`, DiffAugment on every image D sees.

  python train.py --config=configs/cifar10_ssl.py --workdir=runs/cifar10_ssl
  python eval.py --workdir=runs/cifar10_ssl
  python train.py --config=configs/cifar10_ssl.py:supervised_only --workdir=runs/cifar10_ssl_supervised

Needs the tfds `cifar10` data (README "Data") and a GPU. Not measured here; published anchor:
Improved GAN 18.6% test error with 4,000 labels (docs/results.md). Arguments: `runlocal`,
`supervised_only` (the control on the same labels alone), `supervised_only,runlocal`.
"""

import ml_collections

from configs import base
from configs import cifar10_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags = base.parse_arg(arg, ("runlocal", "supervised_only", "supervised_only,runlocal"))
  config = cifar10_dcgan.get_config("runlocal" if "runlocal" in flags else None)
  config.augment = "translation,cutout"
  config.kplus1 = base.block("kplus1", labels_per_class=400)
  if "supervised_only" in flags:
    config.adversarial.weight = 0.0
  return config
