r"""Semi-supervised classification of the 5,000 real MNIST digits with 100 labels: the K+1 GAN.

Run (no network needed):
  python train.py --config=configs/mnist_ssl.py --workdir=runs/mnist_ssl
  python eval.py --workdir=runs/mnist_ssl   # row `semi_supervised`: test accuracy, labels used
The control, the same discriminator trained on the same 100 labels alone:
  python train.py --config=configs/mnist_ssl.py:supervised_only --workdir=runs/mnist_ssl_supervised

Salimans et al. 2016 ("Improved techniques for training GANs"): the discriminator's last
layer gives 10 class logits, and its real/fake logit is their logsumexp (a generated image
is class K+1, whose logit is fixed at 0). Its loss is the cross-entropy on the labelled
subset plus the real/fake loss on all 4,000 training images; the generator matches the
mean of D's last layer features on real images (feature matching). D also minimises the
entropy of its class predictions on real images (Bad GAN's term, Dai et al. 2017); in the
trials it made no clear difference up to step 3,000 (0.859 / 0.898 / 0.922 with it, 0.862 /
0.904 / 0.915 without, at steps 1,000 / 2,000 / 3,000), and only the run with it went on to
5,000. `labels_per_class`
images of each class are chosen by `config.seed` and listed in the workdir's
`labelled_subset.json`; no other label is read. The rest is the default recipe of
`mnist_dcgan` (DiffAugment on every image D sees, the labelled ones included; SimCLR loss).
Measured (2-core CPU, 5,000 steps, 31-38 min each beside another run): `semi_supervised`
test accuracy 0.953 / 0.944 / 0.935 for seeds 0 / 1 / 2, mean 0.944 (error 5.6%); the
issue's target (error <= 3% over 3 seeds) is NOT met. The supervised-only control reached
0.898 / 0.862 / 0.902 (mean 0.887) at step 2,000, where the K+1 GAN was at 0.910.
With `--config.ssl.consistency_weight=1` (FixMatch's consistency term on every real image)
seed 0 reached 0.882 / 0.920 / 0.944 / 0.950 / 0.960 at steps 1,000-5,000, ahead of this
config's 0.859 / 0.910 / 0.933 / 0.937 / 0.953 on the same seed; seeds 1 and 2 with it reached
0.962 / 0.962 at step 5,000 (this config: 0.944 / 0.935), a 3-seed mean of 0.961 (error 3.9%);
measured at the end of a session, so not yet the default.
Published anchors (full MNIST, 60,000 images): Improved GAN 0.93% test error with 100
labels; Bad GAN 0.80%.
"""

import ml_collections

from configs import mnist_dcgan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  runlocal = arg in ("runlocal", "supervised_only,runlocal")
  config = mnist_dcgan.get_config("runlocal" if runlocal else None)
  config.ssl.update(labels_per_class=10, num_classes=10, feature_matching=True, entropy_weight=1.0)
  if arg and arg.startswith("supervised_only"):
    # The control: D learns from the labelled images alone (still augmented); no real/fake
    # loss and no contrastive loss, so the 3,900 unlabelled images never reach it.
    config.ssl.unsupervised_weight = 0.0
    config.ssl.entropy_weight = 0.0
    config.contrastive.weight = 0.0
  elif arg and not runlocal:
    raise ValueError(f"config argument {arg!r}; allowed: runlocal, supervised_only, supervised_only,runlocal")
  return config
