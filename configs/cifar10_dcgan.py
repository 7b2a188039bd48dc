r"""The SNGAN paper's "standard CNN" GAN on CIFAR-10 (Miyato et al. 2018, Table 3).

Run (needs the tfds `cifar10` data; see README "Data"):
  python train.py --config=configs/cifar10_dcgan.py --workdir=runs/cifar10_dcgan
A quick CPU smoke run of the same model:
  python train.py --config=configs/cifar10_dcgan.py:runlocal --workdir=/tmp/cifar10_smoke

Model: G z128 -> 4x4x512 -> deconv 256/128/64 (BatchNorm, ReLU) -> conv3x3 -> tanh;
D conv 64-64-128-128-256-256-512 (LeakyReLU 0.1) -> dense 1. Non-saturating loss,
Adam(2e-4, b1=0.5, b2=0.999), n_dis=1, batch 64, 100k generator steps: the DCGAN
setting ("C") of the SNGAN paper's Table 2.
Published reference for this architecture: with spectral normalisation in D the SNGAN
paper reports Inception Score 7.42 and FID 29.3 (5k samples); without it the
optimizer settings of its Table 2 give IS between about 6 and 7. Not measured here: a
100k-step run needs a GPU, and FID the InceptionV3 weights file (see the comment below).
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = base.get_config()
  config.data.name = "cifar10"
  config.image_size = 32
  config.channels = 3
  config.model.update(latent_dim=128, generator_features=64, discriminator_features=64,
                      discriminator_stride1_convs=True)
  config.augment = ""  # The published recipe; the MNIST default adds DiffAugment and SimCLR.
  config.total_steps = 100_000
  config.save_every = config.sample_every = 5_000
  config.eval_every = 10_000
  # `dcgan` would be 22,528 dims x 50,000 images here (4.5 GB a copy); the last conv
  # layer flattened (4x4x512) keeps the probe to 8,192.
  config.evals.representation.probe_features = "pre_logits"
  # The papers' FID protocol: 50,000 EMA samples against the 50,000 training images on
  # InceptionV3's pool3. Off until the converted weights are named (docs/generation_metrics.md):
  # --config.evals.generation.num_samples=50000
  # --config.evals.generation.inception_weights=/path/pt_inception.npz
  config.evals.generation.update(num_samples=0, extractor="inception_v3")
  if arg == "runlocal":  # Same model, a few steps: checks the pipeline on a laptop.
    config.steps_per_call = 1  # Compiles faster; fused calls only pay off over long runs.
    config.total_steps = 20
    config.log_every = config.save_every = config.sample_every = 10
    config.eval_every = 0
  elif arg:
    raise ValueError(f"config argument {arg!r}; allowed: runlocal")
  return config
