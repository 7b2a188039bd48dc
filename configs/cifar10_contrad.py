r"""ContraD on CIFAR-10 with the SNGAN paper's standard CNN: the recipe of Jeong & Shin 2021
(`c10_b512.gin`, `--mode=contrad`): batch 512, non-saturating loss, Adam 2e-4 (0.5, 0.999),
200k steps, temperature 0.1 for both contrastive terms.

  python train.py --config=configs/cifar10_contrad.py --workdir=runs/cifar10_contrad

Needs the tfds `cifar10` data (README "Data") and a GPU. Differs from the paper: our standard
CNN has no spectral norm, and D's views are DiffAugment's translation and cutout, not SimCLR's
crops and colour jitter. Not measured here; the paper's anchor: docs/results.md (issue 41).
"""

import ml_collections

from configs import base
from configs import cifar10_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags = base.parse_arg(arg, ("runlocal", "ablations", "ablations,runlocal"))
  config = cifar10_dcgan.get_config("runlocal" if "runlocal" in flags else None)
  config.augment = "translation,cutout"
  config.contrastive = base.block("contrastive", temperature=0.1)
  config.contrastive.fake_negatives = base.block("contrastive.fake_negatives")
  config.adversarial.detach = True
  if "runlocal" not in flags:
    config.batch_size = 512
    config.total_steps = 200_000
  if "ablations" in flags:
    config.population.update(seeds=3, ablations="adversarial,fake_negatives")
  return config
