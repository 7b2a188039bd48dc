r"""The SNGAN paper's "standard CNN" GAN on CIFAR-10 (Miyato et al. 2018, Table 3), DCGAN setting.

  python train.py --config=configs/cifar10_dcgan.py --workdir=runs/cifar10_dcgan
  python train.py --config=configs/cifar10_dcgan.py:runlocal --workdir=/tmp/cifar10_smoke

Needs the tfds `cifar10` data (README "Data") and a GPU for its 100k steps; `runlocal` is a
20-step CPU check of the same model. Not measured here; published anchor for this model
without spectral normalisation: Inception Score between about 6 and 7 (docs/results.md).
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags = base.parse_arg(arg, ("runlocal",))
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
  if "runlocal" in flags:  # Same model, a few steps: checks the pipeline on a laptop.
    config.steps_per_call = 1  # Compiles faster; fused calls only pay off over long runs.
    config.total_steps = 20
    config.log_every = config.save_every = config.sample_every = 10
    config.eval_every = 0
  return config
