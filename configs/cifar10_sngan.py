r"""SNGAN on CIFAR-10: the ResNet generator and spectrally normalised discriminator of
Miyato et al. 2018 (Table 4), with their hinge-loss recipe.

Run (needs the tfds `cifar10` data and a GPU; see README "Data"):
  python train.py --config=configs/cifar10_sngan.py --workdir=runs/cifar10_sngan
A CPU smoke run of the same model: `configs/cifar10_sngan.py:runlocal`.

Model (`gan_jax/models/resnet.py`): G z128 -> 4x4x256 -> 3 ResBlocks up (256, BatchNorm)
-> conv3x3 -> tanh; D: 4 ResBlocks (128; two downsample), ReLU, global sum pool,
dense 1, every layer of D spectrally normalised (Flax's SpectralNorm, one power
iteration per D update, its state in the train state). Hinge loss, n_dis = 5,
Adam(2e-4, b1=0.0, b2=0.9) for both, batch 64, learning rates decayed linearly to 0
over 50k generator updates, generator EMA 0.9999 for samples.
Published numbers for this recipe: the SNGAN paper gives Inception Score 8.22 and FID
21.7 (ResNet, hinge, 50k samples vs the train set for IS; 10k test-set FID); torch-mimicry's
reproduction reports FID about 17 (50k samples against the train set, 100k steps).
Not measured here: a run needs a GPU, and FID the InceptionV3 weights (configs/cifar10_dcgan.py).
"""

import ml_collections

from configs import cifar10_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = cifar10_dcgan.get_config("runlocal" if arg == "runlocal" else None)
  config.model.name = "resnet"
  config.model.generator_features = 256
  config.model.discriminator_features = 128
  config.adversarial.loss = "hinge"
  config.n_dis = 5
  config.ema_decay = 0.9999
  for opt in (config.g_optimizer, config.d_optimizer):
    opt.update(b1=0.0, b2=0.9, schedule="linear")
  if arg == "runlocal":
    config.total_steps = 10
    config.log_every = config.save_every = config.sample_every = 5
  else:
    config.total_steps = 50_000
    if arg:
      raise ValueError(f"config argument {arg!r}; allowed: runlocal")
  return config
