r"""Semi-supervised CIFAR-10 with 4,000 labels (400 per class): the K+1 GAN on the standard CNN.

Run (needs the tfds `cifar10` data; see README "Data"):
  python train.py --config=configs/cifar10_ssl.py --workdir=runs/cifar10_ssl
  python eval.py --workdir=runs/cifar10_ssl
The control on the same 4,000 labels alone: `configs/cifar10_ssl.py:supervised_only`.

Salimans et al. 2016's semi-supervised GAN (see `mnist_ssl`) on the SNGAN paper's standard
CNN of `cifar10_dcgan` (D 64-64-128-128-256-256-512 with 10 class logits; G with feature
matching), DiffAugment (translation, cutout) on every image D sees. Published anchors
(their own architectures): Improved GAN 18.6% test error with 4,000 labels; Bad GAN 14.4%.
Not measured here: a 100k-step run needs a GPU and the cifar10 data.
"""

import ml_collections

from configs import base
from configs import cifar10_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "runlocal", "supervised_only", "supervised_only,runlocal"):
    raise ValueError(f"config argument {arg!r}; allowed: runlocal, supervised_only, supervised_only,runlocal")
  config = cifar10_dcgan.get_config("runlocal" if arg and arg.endswith("runlocal") else None)
  config.augment = "translation,cutout"
  config.kplus1 = base.block("kplus1", labels_per_class=400)
  if arg and arg.startswith("supervised_only"):
    config.adversarial.weight = 0.0
  return config
