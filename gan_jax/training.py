"""GAN training: the train state, the jit-compiled update step and the training loop.

The train state is a plain dict pytree:
  step          int32 scalar, the number of generator updates done
  rng           uint32[2] key; the step's randomness is `fold_in(rng, step)`
  generator     flax variables {"params", "batch_stats"}
  discriminator flax variables {"params"}, plus "batch_stats" (the spectral norms'
                power-iteration vectors) in the SNGAN ResNet
  g_opt_state, d_opt_state   Optax states
  g_ema_params  exponential moving average of the generator params (samples use it)
  d_ema_params  with `config.d_ema_decay` > 0: the same of the discriminator's params (the
                evaluator reads the GAN-native heads from it, as a mean teacher is read)
  code_bank     with `infogan.neighbour_queue`: {"embeddings", "log_probs"} of the last
                real images D saw (SCAN's neighbour pool), filled in order; zeros are empty
  neighbours    with `infogan.neighbour_k` or `ssl.neighbour_k`: int32 N x k, each training
                image's k nearest other training images by D's embedding, mined every
                `neighbour_refresh` steps
  code_refit_step  with `infogan.refit_heads`: int32, the step at which Q's refit heads
                were fitted (`make_refit_fn`), -1 before; they are read only at that step

`train_step(state, real)` is the whole GAN update: `n_dis` discriminator updates, each
on its own real batch, then one generator update and the EMA update.
"""

from __future__ import annotations

import functools
import json
import operator
import os
import signal
import threading
import time
from typing import Any, NamedTuple

from absl import logging
import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax import augment
from gan_jax import checkpoints
from gan_jax import code_refit
from gan_jax import conv
from gan_jax import data
from gan_jax import files
from gan_jax import losses
from gan_jax import metric_logging
from gan_jax import models
from gan_jax.models import heads
from gan_jax import parallel
from gan_jax import visualize
from gan_jax.evaluation import generation
from gan_jax.evaluation import representation

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "linear")
# Compute dtypes of `config.model.dtype`; parameters, optimizer state and losses stay float32.
COMPUTE_DTYPES = ("float32", "bfloat16")
# Streams of randomness derived from config.seed by fold_in, so adding one never moves another.
_INIT_STREAM, _TRAIN_STREAM, _DATA_STREAM, _SAMPLE_STREAM, _LABELLED_STREAM = range(5)


class GAN(NamedTuple):
  """The pure pieces of one GAN: linen modules, Optax transformations, the loss."""
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  loss: losses.AdversarialLoss
  latent_dim: int  # Noise dimensions; the generator's input adds the InfoGAN codes.
  num_categories: int = 0  # InfoGAN's categorical code: its number of values (0: none).
  num_continuous: int = 0  # InfoGAN's continuous codes, each uniform in [-1, 1].
  noise_std: float = 1.0  # Standard deviation of the noise part of the latent.

  @property
  def input_dim(self) -> int:
    return self.latent_dim + self.num_categories + self.num_continuous


def sample_latents(key: jax.Array, batch_size: int, gan: GAN) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Generator inputs `B x input_dim`: N(0, noise_std^2) noise, then the one-hot categorical code
  (uniform over its values), then the continuous codes (uniform in [-1, 1]).
  Returns (inputs, categories int32 `B`, continuous `B x C`)."""
  # The noise takes `key` itself, so a GAN without codes draws what it always drew;
  # fold_in(key, i > 0) are independent of it.
  c_key, u_key = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)
  z = gan.noise_std * jax.random.normal(key, (batch_size, gan.latent_dim))
  categories = jax.random.randint(c_key, (batch_size,), 0, max(gan.num_categories, 1))
  continuous = jax.random.uniform(u_key, (batch_size, gan.num_continuous), minval=-1.0, maxval=1.0)
  one_hot = jax.nn.one_hot(categories, gan.num_categories)
  return jnp.concatenate([z, one_hot, continuous], axis=1), categories, continuous


def grid_latents(key: jax.Array, num_samples: int, gan: GAN) -> tuple[jax.Array, int]:
  """Generator inputs for a sample grid, and its number of columns.

  With a categorical code: one row per code value and `num_samples // categories`
  columns, each column one noise vector across the rows (continuous codes at 0), so
  a row shows what its code means. Otherwise `num_samples` noise vectors, square grid.
  """
  if not gan.num_categories:
    return sample_latents(key, num_samples, gan)[0], 0
  columns = max(num_samples // gan.num_categories, 1)
  z = jnp.tile(gan.noise_std * jax.random.normal(key, (columns, gan.latent_dim)), (gan.num_categories, 1))
  categories = jnp.repeat(jnp.arange(gan.num_categories), columns)
  continuous = jnp.zeros((len(categories), gan.num_continuous))
  return jnp.concatenate([z, jax.nn.one_hot(categories, gan.num_categories), continuous], axis=1), columns


# ----------------------------------------------------------------------------
# Config checks and construction.
# ----------------------------------------------------------------------------


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field that holds a value training cannot use."""
  positive = ["batch_size", "total_steps", "n_dis", "steps_per_call", "log_every", "save_every",
              "sample_every", "keep", "num_samples", "image_size", "model.latent_dim",
              "model.generator_features", "model.discriminator_features",
              "g_optimizer.learning_rate", "d_optimizer.learning_rate"]
  for field in positive:
    value = functools.reduce(getattr, field.split("."), config)
    if not value > 0:
      raise ValueError(f"config.{field}={value!r} must be positive")
  if config.channels not in (1, 3):
    raise ValueError(f"config.channels={config.channels!r}; allowed: 1, 3")
  if config.model.get("dtype", "float32") not in COMPUTE_DTYPES:
    raise ValueError(f"config.model.dtype={config.model.dtype!r}; allowed: {', '.join(COMPUTE_DTYPES)}")
  conv.check_backward(config.model.get("conv_backward", "phase"))
  for field in ("ema_decay", "d_ema_decay"):
    if not 0.0 <= config.get(field, 0.0) < 1.0:
      raise ValueError(f"config.{field}={config[field]!r} must be in [0, 1)")
  for field in ("gradient_penalty", "r1_gamma"):
    if config.get(field, 0.0) < 0:
      raise ValueError(f"config.{field}={config[field]!r} must be >= 0")
  for field, weight in zip(("d_weight", "g_weight"), rotation_weights(config)):
    if weight < 0:
      raise ValueError(f"config.rotation.{field}={weight!r} must be >= 0")
  code = code_settings(config)
  for field in ("categories", "continuous", "categorical_weight", "continuous_weight", "real_weight",
                "pair_weight", "consistency_weight", "noise_weight", "neighbour_weight",
                "neighbour_entropy_weight", "neighbour_queue", "neighbour_k", "categorical_warmup",
                "consistency_start", "refit_heads"):
    if getattr(code, field) < 0:
      raise ValueError(f"config.infogan.{field}={getattr(code, field)!r} must be >= 0")
  if code.neighbour_queue % config.batch_size:
    raise ValueError(f"config.infogan.neighbour_queue={code.neighbour_queue!r} must be a multiple of "
                     f"config.batch_size={config.batch_size}")
  if code.neighbour_k:
    if not (code.neighbour_weight and code.categories):
      raise ValueError(f"config.infogan.neighbour_k={code.neighbour_k!r} needs config.infogan.neighbour_weight > 0 "
                       "and config.infogan.categories >= 2 (it mines neighbours for that term)")
    if code.neighbour_queue:
      raise ValueError(f"config.infogan.neighbour_queue={code.neighbour_queue!r} and config.infogan.neighbour_k="
                       f"{code.neighbour_k!r}: neighbours come from the queue or from the whole training set; "
                       "set one of them to 0")
    if code.neighbour_refresh <= 0:
      raise ValueError(f"config.infogan.neighbour_refresh={code.neighbour_refresh!r} must be positive")
  if code.categories == 1:
    raise ValueError("config.infogan.categories=1: a code with one value carries no information; use 0 or >= 2")
  if code.q_input not in heads.CODE_INPUTS:
    raise ValueError(f"config.infogan.q_input={code.q_input!r}; allowed: {', '.join(heads.CODE_INPUTS)}")
  if not code.noise_std > 0:
    raise ValueError(f"config.infogan.noise_std={code.noise_std!r} must be positive")
  if (code.categories or code.continuous) and code.hidden <= 0:
    raise ValueError(f"config.infogan.hidden={code.hidden!r} must be positive")
  if code.heads < 1:
    raise ValueError(f"config.infogan.heads={code.heads!r} must be >= 1")
  if code.heads > 1 and not code.categories:
    raise ValueError(f"config.infogan.heads={code.heads!r} needs config.infogan.categories >= 2 (the heads cluster "
                     "by the categorical code)")
  if code.heads > 1 and code.neighbour_queue:
    raise ValueError(f"config.infogan.heads={code.heads!r} and config.infogan.neighbour_queue="
                     f"{code.neighbour_queue!r}: the queue keeps one head's predictions; set heads=1 or neighbour_queue=0")
  if code.refit_heads:
    if not code.categories:
      raise ValueError(f"config.infogan.refit_heads={code.refit_heads!r} needs config.infogan.categories >= 2 "
                       "(the heads cluster by the categorical code)")
    for field in ("refit_steps", "refit_batch_size", "refit_learning_rate", "refit_k", "refit_dim"):
      if not getattr(code, field) > 0:
        raise ValueError(f"config.infogan.{field}={getattr(code, field)!r} must be positive")
  ssl = ssl_settings(config)
  if ssl.labels_per_class < 0:
    raise ValueError(f"config.ssl.labels_per_class={ssl.labels_per_class!r} must be >= 0 (0: no semi-supervision)")
  if ssl.labels_per_class:
    if ssl.num_classes < 2:
      raise ValueError(f"config.ssl.num_classes={ssl.num_classes!r} must be >= 2 with config.ssl.labels_per_class")
    for field in ("supervised_weight", "unsupervised_weight", "batch_size", "entropy_weight", "consistency_weight",
                  "neighbour_weight", "neighbour_k", "consistency_start"):
      if getattr(ssl, field) < 0:
        raise ValueError(f"config.ssl.{field}={getattr(ssl, field)!r} must be >= 0")
    labelled_augment_policy(config)
    if bool(ssl.neighbour_weight) != bool(ssl.neighbour_k):
      raise ValueError(f"config.ssl.neighbour_weight={ssl.neighbour_weight!r} and config.ssl.neighbour_k="
                       f"{ssl.neighbour_k!r}: the term needs mined neighbours; set both or neither")
    if ssl.neighbour_k and code.neighbour_k:
      raise ValueError(f"config.ssl.neighbour_k={ssl.neighbour_k!r} and config.infogan.neighbour_k="
                       f"{code.neighbour_k!r}: one table of neighbours per run; set one of them to 0")
    if ssl.neighbour_k and ssl.neighbour_refresh <= 0:
      raise ValueError(f"config.ssl.neighbour_refresh={ssl.neighbour_refresh!r} must be positive")
  for block, settings in (("infogan", code), ("ssl", ssl)):
    if not 0.0 <= settings.confidence_threshold <= 1.0:
      raise ValueError(f"config.{block}.confidence_threshold={settings.confidence_threshold!r} must be in [0, 1]")
  for field, value in zip(("weight", "temperature", "projection_dim"), contrastive_settings(config)):
    if value < 0 or (field != "weight" and value == 0):
      raise ValueError(f"config.contrastive.{field}={value!r} must be {'>= 0' if field == 'weight' else 'positive'}")
  if config.get("eval_every", 0) < 0:
    raise ValueError(f"config.eval_every={config.eval_every!r} must be >= 0 (0: no evaluation during training)")
  for field in ("lean_views", "skip_nonfinite_updates"):
    if not isinstance(config.get(field, False), bool):
      raise ValueError(f"config.{field}={config[field]!r} must be True or False")
  views = views_policy(config)
  if config.get("lean_views", False) and augment.parse_policy(config.get("augment", "")) != views:
    raise ValueError(f"config.lean_views=True needs config.augment={config.get('views_augment', VIEWS_AUGMENT)!r}, "
                     f"as config.views_augment (got {config.get('augment', '')!r}): D's real images are then view 0")
  nan_step = config.get("debug_nan_step", -1)
  if isinstance(nan_step, bool) or not isinstance(nan_step, int) or nan_step < -1:
    raise ValueError(f"config.debug_nan_step={nan_step!r} must be -1 (off) or a step >= 0")
  representation.get_config(config)
  generation.get_config(config)
  augment.parse_policy(config.get("augment", ""))
  for field in ("total_steps", "log_every", "save_every", "sample_every", "eval_every"):
    if config.get(field, 0) % config.steps_per_call:
      raise ValueError(f"config.{field}={getattr(config, field)} must be a multiple of "
                       f"config.steps_per_call={config.steps_per_call}")
  for which in ("g_optimizer", "d_optimizer"):
    opt = config[which]
    if opt.name not in OPTIMIZERS:
      raise ValueError(f"config.{which}.name={opt.name!r}; allowed: {', '.join(OPTIMIZERS)}")
    if opt.schedule not in SCHEDULES:
      raise ValueError(f"config.{which}.schedule={opt.schedule!r}; allowed: {', '.join(SCHEDULES)}")
  losses.get_loss(config.loss)
  module = models.get_model_module(config.model.name)
  if hasattr(module, "check_image_size"):
    module.check_image_size(config.image_size)


def make_optimizer(opt_config: ml_collections.ConfigDict, num_updates: int) -> optax.GradientTransformation:
  """Optax optimizer from `config.{g,d}_optimizer`: name, learning_rate, b1, b2, weight_decay, schedule.

  `num_updates` is how many times this optimizer steps in the whole run (the
  discriminator's is `n_dis` times the generator's): the linear schedule reaches 0 there.
  """
  lr = opt_config.learning_rate
  if opt_config.schedule == "linear":  # Linear decay to zero over the run, as in SNGAN.
    lr = optax.linear_schedule(lr, 0.0, num_updates)
  if opt_config.name == "adamw":
    return optax.adamw(lr, b1=opt_config.b1, b2=opt_config.b2, weight_decay=opt_config.weight_decay)
  return optax.adam(lr, b1=opt_config.b1, b2=opt_config.b2)


def make_gan(config: ml_collections.ConfigDict) -> GAN:
  """Builds the modules, optimizers and loss that a config names."""
  module = models.get_model_module(config.model.name)
  m = config.model
  dtype = jnp.dtype(m.get("dtype", "float32"))
  contrastive_weight, _, projection_dim = contrastive_settings(config)
  code, ssl = code_settings(config), ssl_settings(config)
  conv_backward = m.get("conv_backward", "phase")
  generator = module.Generator(image_size=config.image_size, channels=config.channels,
                               base_features=m.generator_features, conv_backward=conv_backward, dtype=dtype)
  discriminator = module.Discriminator(image_size=config.image_size, base_features=m.discriminator_features,
                                       stride1_convs=m.discriminator_stride1_convs,
                                       rotation_head=any(rotation_weights(config)),
                                       projection_dim=projection_dim if contrastive_weight else 0,
                                       code_categories=code.categories,
                                       code_continuous=code.continuous + (m.latent_dim if code.noise_weight else 0),
                                       code_hidden=code.hidden, code_input=code.q_input, code_heads=code.heads,
                                       code_refit_heads=code.refit_heads,
                                       num_classes=ssl.num_classes if ssl.labels_per_class else 0,
                                       conv_backward=conv_backward, dtype=dtype)
  return GAN(generator, discriminator,
             make_optimizer(config.g_optimizer, config.total_steps),
             make_optimizer(config.d_optimizer, config.total_steps * config.n_dis),
             losses.get_loss(config.loss), m.latent_dim, code.categories, code.continuous, code.noise_std)


def rotation_weights(config: ml_collections.ConfigDict) -> tuple[float, float]:
  """(discriminator, generator) weights of the SS-GAN rotation loss; (0, 0) in configs that predate it."""
  rotation = config.get("rotation") or {}
  return float(rotation.get("d_weight", 0.0)), float(rotation.get("g_weight", 0.0))


def contrastive_settings(config: ml_collections.ConfigDict) -> tuple[float, float, int]:
  """(weight, temperature, projection_dim) of D's contrastive loss; weight 0 in configs that predate it."""
  c = config.get("contrastive") or {}
  return float(c.get("weight", 0.0)), float(c.get("temperature", 0.2)), int(c.get("projection_dim", 128))


class CodeSettings(NamedTuple):
  """`config.infogan`: InfoGAN's latent codes (Chen et al. 2016) and their weights."""
  categories: int = 0            # Values of the categorical code (0: none).
  continuous: int = 0            # Number of continuous codes, uniform in [-1, 1].
  categorical_weight: float = 1.0  # lambda of the categorical mutual-information term.
  # Steps over which that lambda rises linearly from 0 (0: at full weight from the start).
  # While it is small the neighbour term alone shapes Q's clusters of real images, so the
  # generator's code is then tied to them rather than Q to the code's first arbitrary meaning.
  categorical_warmup: int = 0
  continuous_weight: float = 0.1   # lambda of the continuous codes' term.
  hidden: int = 128              # Width of the Q head's hidden layer.
  q_input: str = "pre_logits"    # What Q reads from D: `models.heads.CODE_INPUTS`.
  # Q heads over the categorical code (SCAN's and IIC's several heads): each learns every
  # categorical term (the generator's code, and the real-image terms below), from its own
  # initialisation, and the loss is their mean; evaluation reads the head with the lowest
  # SCAN loss on the training split (`evaluation.representation.select_code_head`), chosen
  # without labels. Fitted on a frozen D, heads from different starts found clusterings
  # 0.1 ACC apart; trained with D (mnist_infogan, 5 heads), they settled within 0.01 of each
  # other, so there the choice gained nothing (README, "GAN-native methods").
  heads: int = 1
  # Q heads fitted afresh at the end of training (0: none) on D's frozen features (what Q
  # reads, of the un-augmented training images) by SCAN's loss against each image's
  # `refit_k` nearest training images by D's embedding, from different starts; evaluation
  # then chooses among them and the trained heads by the same loss (`code_refit`, SCAN's
  # clustering step with a frozen backbone). Trained with D, the heads above all learn the
  # generator's code and settle on one clustering; these need not.
  refit_heads: int = 0
  refit_steps: int = 3000  # Adam steps of each head, on `refit_batch_size` images each.
  refit_batch_size: int = 256
  refit_learning_rate: float = 1e-3
  refit_k: int = 20  # SCAN's k.
  # The heads read this many principal components of the features (folded into their first
  # layer afterwards), so a step costs dim / F of one that reads them all. On mnist_infogan's
  # 4,096 features at step 2,500, 10 heads of 3,000 steps: 0.846 mean ACC of the chosen head
  # over 3 seeds at 1,024 in 95 s, 0.812 at 256 in 48 s; 0.873 for all 4,096 in 275 s.
  refit_dim: int = 1024
  # Standard deviation of the generator's noise beside the codes. Below 1 it leaves the
  # categorical code to carry the data's discrete modes (ClusterGAN, Mukherjee et al. 2019).
  noise_std: float = 1.0
  # Weight of the mutual information between real images and Q's clusters, maximised by
  # D and Q (`losses.mutual_information_loss`): Q also learns from real images, with
  # confident, balanced predictions, beside learning the codes of generated ones.
  real_weight: float = 0.0
  # Weight of the mutual information between Q's clusters on two augmented views of each
  # real image (IIC, Ji et al. 2019), maximised by D and Q: a real image's cluster must
  # survive translation and cutout, which a digit's class does and its position does not.
  pair_weight: float = 0.0
  # Weight of FixMatch's consistency term on Q's clusters of real images
  # (`losses.pseudo_label_loss`): a translated-and-cut-out view must fall in the cluster
  # that Q gives a translated view with confidence >= `confidence_threshold`.
  consistency_weight: float = 0.0
  confidence_threshold: float = 0.95
  # The step from which that term counts: SCAN's self-labelling is a second stage, after the
  # neighbour term has formed the clusters, so that it sharpens them instead of the first guess.
  consistency_start: int = 0
  # Weight of SCAN's neighbour term on Q's clusters of real images
  # (`losses.neighbour_agreement_loss`), maximised by D and Q: each real image's cluster
  # must agree with that of its nearest other image in the batch, by D's projection head
  # (or `pre_logits` without the contrastive loss). Two views of the batch are compared, so
  # the term also asks for invariance to translation and cutout.
  neighbour_weight: float = 0.0
  # SCAN's lambda: the term is neighbour_weight x (agreement loss - this x the entropy of
  # the batch's mean cluster prediction). Without a large one the clusters merge: at 1
  # (as `real_weight=1` gives) Q used about 3 clusters by step 300 (README).
  neighbour_entropy_weight: float = 5.0
  # Neighbours are also sought among this many earlier real images (a queue in the train
  # state of their embeddings and Q's predictions then, which carry no gradient; a multiple
  # of batch_size; 0: the batch only). A batch of 64 is a poor pool: the nearest other image
  # had the same digit for 0.73 of images, against 0.92 over all 4,000 (README).
  neighbour_queue: int = 0
  # Neighbours mined over the whole training set, as SCAN does (0: off, the batch and queue
  # above): every `neighbour_refresh` steps each training image's `neighbour_k` nearest other
  # images by D's embedding (cosine, un-augmented) are found and kept in the train state;
  # each step pairs every real image with one of its neighbours drawn at random, and that
  # neighbour's own augmented view goes through D and Q, so both sides of a pair get
  # gradients. Costs one more batch through D per update, and D on the training set at each
  # refresh. SCAN's k is 20.
  neighbour_k: int = 0
  neighbour_refresh: int = 500
  # Weight of Q's squared error in recovering the noise part of each generated image's
  # latent (ClusterGAN's encoder term, Mukherjee et al. 2019; added to both losses like the
  # continuous codes'): the generator must keep its noise recoverable, so with a small
  # `noise_std` it cannot draw one prototype per code value. Q then has `latent_dim` more
  # outputs, after the continuous codes' in `code_mean`.
  noise_weight: float = 0.0


def _settings(config: ml_collections.ConfigDict, block: str, settings_type):
  """`config.<block>` as a `settings_type` NamedTuple (its defaults where the config, or an
  older one without the block, says nothing); an unknown field is an error naming it."""
  given = dict(config.get(block) or {})
  unknown = set(given) - set(settings_type._fields)
  if unknown:
    raise ValueError(f"config.{block}.{sorted(unknown)[0]} is not a field; "
                     f"allowed: {', '.join(settings_type._fields)}")
  return settings_type(**given)


def code_settings(config: ml_collections.ConfigDict) -> CodeSettings:
  """The run's InfoGAN settings; no codes in configs that predate them."""
  return _settings(config, "infogan", CodeSettings)


class SSLSettings(NamedTuple):
  """`config.ssl`: the semi-supervised K+1 discriminator (Salimans et al. 2016)."""
  labels_per_class: int = 0       # Labelled training images per class (0: off).
  num_classes: int = 10           # K, the classes of the data.
  supervised_weight: float = 1.0  # Weight of the cross-entropy on the labelled subset.
  unsupervised_weight: float = 1.0  # Weight of the real/fake loss (0: the supervised-only control).
  feature_matching: bool = True   # The generator matches D's mean `pre_logits` on real images.
  batch_size: int = 0             # Labelled images per discriminator update (0: config.batch_size).
  # Weight of the entropy of D's class predictions on real images, minimised (the
  # conditional-entropy term of Bad GAN, Dai et al. 2017; 0: Salimans et al.'s loss alone).
  entropy_weight: float = 0.0
  # Weight of FixMatch's consistency term on D's class predictions for every real image
  # (`losses.pseudo_label_loss`; Sohn et al. 2020): a translated-and-cut-out view is taught
  # the class that a translated view gets with confidence >= `confidence_threshold`. No
  # label is read: the targets are D's own predictions.
  consistency_weight: float = 0.0
  confidence_threshold: float = 0.95
  consistency_start: int = 0  # The step from which that term counts (as `infogan.consistency_start`).
  # DiffAugment policy of the labelled images (`augment.parse_policy`), e.g. "translation"
  # for FixMatch's weak augmentation; "same": `config.augment`, as every image D judges.
  labelled_augment: str = "same"
  # Weight of SCAN's neighbour term on D's class predictions (`losses.neighbour_consistency_loss`):
  # each real image's class must agree with that of one of its `neighbour_k` nearest training
  # images (mined as `infogan.neighbour_k` mines them, every `neighbour_refresh` steps, by D's
  # projection head). No label is read; the supervised loss anchors the classes.
  neighbour_weight: float = 0.0
  neighbour_k: int = 0
  neighbour_refresh: int = 500


def neighbour_mining(config: ml_collections.ConfigDict) -> tuple[str, int, int]:
  """(block, k, refresh) of the head whose neighbour term uses neighbours mined over the
  training set (`infogan` or `ssl`); ("", 0, 0) where none does, so nothing is mined."""
  code, ssl = code_settings(config), ssl_settings(config)
  for block, settings, head_on in (("infogan", code, code.categories), ("ssl", ssl, ssl.labels_per_class)):
    if settings.neighbour_k and settings.neighbour_weight and head_on:
      return block, settings.neighbour_k, settings.neighbour_refresh
  return "", 0, 0


def ssl_settings(config: ml_collections.ConfigDict) -> SSLSettings:
  """The run's semi-supervised settings; off in configs that predate them."""
  return _settings(config, "ssl", SSLSettings)


# The views' transformations in configs that predate `config.views_augment`.
VIEWS_AUGMENT = "translation,cutout"


def views_policy(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The transformations (`augment.POLICIES`) of the real images' views that the contrastive,
  neighbour and consistency terms compare; ValueError naming `config.views_augment` on an
  unknown one."""
  return augment.parse_policy(config.get("views_augment", VIEWS_AUGMENT), "views_augment")


def labelled_augment_policy(config: ml_collections.ConfigDict) -> tuple[str, ...] | None:
  """The labelled images' DiffAugment policy (None: `config.augment`'s, set by "same");
  ValueError naming `config.ssl.labelled_augment` on an unknown transformation."""
  policy = ssl_settings(config).labelled_augment
  return None if policy == "same" else augment.parse_policy(policy, "ssl.labelled_augment")


def seed_keys(seed: int) -> dict[str, jax.Array]:
  """The independent random streams of a run, from `config.seed`."""
  root = jax.random.PRNGKey(seed)
  return {name: jax.random.fold_in(root, stream) for name, stream in
          [("init", _INIT_STREAM), ("train", _TRAIN_STREAM), ("data", _DATA_STREAM), ("sample", _SAMPLE_STREAM),
                              ("labelled", _LABELLED_STREAM)]}


def init_state(gan: GAN, config: ml_collections.ConfigDict, num_examples: int = 0) -> dict[str, Any]:
  """A fresh train state (pure: run it under `jax.jit` or `jax.eval_shape`). `num_examples`,
  the training set's size, is needed only by `infogan.neighbour_k` and `ssl.neighbour_k` (a table of neighbours
  per training image; mined at step 0, so it starts empty)."""
  keys = seed_keys(config.seed)
  g_key, d_key = jax.random.split(keys["init"])
  z = jnp.zeros((1, gan.input_dim), jnp.float32)
  g_vars = gan.generator.init(g_key, z, train=False)
  images = jnp.zeros((1, config.image_size, config.image_size, config.channels), jnp.float32)
  d_vars = gan.discriminator.init(d_key, images)
  return {
      "step": jnp.zeros((), jnp.int32),
      "rng": keys["train"],
      "generator": g_vars,
      "discriminator": d_vars,
      "g_opt_state": gan.g_tx.init(g_vars["params"]),
      "d_opt_state": gan.d_tx.init(d_vars["params"]),
      "g_ema_params": g_vars["params"],
      **({"d_ema_params": d_vars["params"]} if config.get("d_ema_decay", 0.0) else {}),
      **_code_bank(gan, config, d_vars, images),
      **_neighbour_table(gan, config, num_examples),
      # The step at which Q's refit heads were last fitted (-1: never): they count only there.
      **({"code_refit_step": jnp.full((), -1, jnp.int32)} if code_settings(config).refit_heads else {}),
  }


def pairing_embedding(features: dict[str, jax.Array]) -> jax.Array:
  """The embedding SCAN's neighbour terms pair images by: D's contrastive projection head,
  else `pre_logits`."""
  return features["projection" if "projection" in features else "pre_logits"]


def _neighbour_table(gan: GAN, config: ml_collections.ConfigDict, num_examples: int) -> dict[str, Any]:
  """The (not yet mined) neighbour table of the train state ({} without one)."""
  block, k, _ = neighbour_mining(config)
  if not k:
    return {}
  if not num_examples > k:
    raise ValueError(f"config.{block}.neighbour_k={k!r} needs a training set of more than {k} images "
                     f"(given: {num_examples}; init_state's num_examples)")
  return {"neighbours": jnp.zeros((num_examples, k), jnp.int32)}


def nearest_neighbours(embeddings_NxP: jax.Array, k: int, block: int = 1024) -> jax.Array:
  """int32 `N x k`: each row's k nearest other rows by cosine, nearest first, `block` rows
  at a time (memory `block x N`, not `N x N`)."""
  n = embeddings_NxP.shape[0]
  e = embeddings_NxP / jnp.linalg.norm(embeddings_NxP, axis=1, keepdims=True).clip(1e-6)

  def top_k(rows, row_index):
    own = row_index[:, None] == jnp.arange(n)[None, :]
    return jax.lax.top_k(jnp.where(own, -jnp.inf, rows @ e.T), k)[1]
  return _map_in_blocks(top_k, (e, jnp.arange(n)), block).astype(jnp.int32)


def map_discriminator(gan: GAN, d_vars, images_u8: jax.Array, read, block: int = 500):
  """`read(features)` (an array or a tuple of them) of D, in evaluation mode, on each uint8
  image, `block` images at a time; traceable, for use inside a jit'd function."""
  def apply(x_u8):
    _, features = gan.discriminator.apply(d_vars, data.to_model_range(x_u8), train=False)
    return read(features)
  return _map_in_blocks(apply, (images_u8,), block)


def mine_neighbours(gan: GAN, d_vars, images_u8: jax.Array, k: int, block: int = 500) -> jax.Array:
  """int32 `N x k`: SCAN's neighbours of each uint8 training image, by D's embedding of the
  un-augmented image (its projection head, else `pre_logits`), `block` images at a time."""
  embed = lambda features: pairing_embedding(features).astype(jnp.float32)
  return nearest_neighbours(map_discriminator(gan, d_vars, images_u8, embed, block), k)


def _map_in_blocks(fn, xs: tuple[jax.Array, ...], block: int) -> jax.Array:
  """`fn(*xs)` (an array or a tuple of them) computed `block` rows at a time under `lax.map`
  (one block's activations in memory), the arrays padded to a whole number of blocks and
  the padding cut off again."""
  n = xs[0].shape[0]
  block = min(block, n)
  blocks = [jnp.pad(x, ((0, -n % block),) + ((0, 0),) * (x.ndim - 1)).reshape(-1, block, *x.shape[1:]) for x in xs]
  out = jax.lax.map(lambda args: fn(*args), tuple(blocks))
  return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:])[:n], out)


def _code_bank(gan: GAN, config: ml_collections.ConfigDict, d_vars, images) -> dict[str, Any]:
  """The empty neighbour queue of the train state ({} without one)."""
  code = code_settings(config)
  if not (code.neighbour_queue and code.neighbour_weight and gan.num_categories):
    return {}
  features = jax.eval_shape(lambda: gan.discriminator.apply(d_vars, images)[1])
  width = pairing_embedding(features).shape[-1]
  return {"code_bank": {"embeddings": jnp.zeros((code.neighbour_queue, width), jnp.float32),
                        "log_probs": jnp.zeros((code.neighbour_queue, gan.num_categories), jnp.float32)}}


# ----------------------------------------------------------------------------
# The update step.
# ----------------------------------------------------------------------------


def repeat(body, carry, xs, length: int, unroll: bool | None = None):
  """`jax.lax.scan(body, carry, xs, length)`, unrolled in Python on CPU.

  XLA:CPU runs convolutions inside a loop body tens of times slower than outside one
  (jax-ml/jax#12868; measured 60x for a 3x3 conv here), so on CPU the loop is traced
  `length` times instead. Accelerators keep the compact loop. `unroll` overrides the choice.
  """
  if unroll is None:
    unroll = jax.default_backend() == "cpu"
  if not unroll:
    return jax.lax.scan(body, carry, xs, length=length)
  outputs = []
  for i in range(length):
    carry, out = body(carry, None if xs is None else jax.tree.map(operator.itemgetter(i), xs))
    outputs.append(out)
  return carry, jax.tree.map(lambda *o: jnp.stack(o), *outputs)


def _concat(parts: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, slice]]:
  """Named batches stacked into one (the discriminator judges them in one pass), with
  the slice of each name, so each head reads its own part of the outputs."""
  slices, start = {}, 0
  for name, x in parts.items():
    slices[name] = slice(start, start + x.shape[0])
    start += x.shape[0]
  return jnp.concatenate(list(parts.values())), slices


def _all_finite(tree) -> jax.Array:
  """Whether every element of every leaf of `tree` is finite (a bool scalar)."""
  return jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]).all()


def _keep_if(ok: jax.Array, new, old):
  """`new` where `ok`, else `old`, leaf by leaf: an update that is skipped when not `ok`."""
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def code_logits(features: dict[str, jax.Array]) -> jax.Array:
  """Q's categorical logits: `B x H x K` with several heads (`infogan.heads`), else `B x K`."""
  return features.get("code_logits_heads", features["code_logits"])


def head_logits(features: dict[str, jax.Array], name: str) -> jax.Array:
  """The logits of head `name` ("code": all of Q's heads, as `code_logits`; "class")."""
  return code_logits(features) if name == "code" else features[f"{name}_logits"]


def train_step(state: dict[str, Any], real_DxBxHxWxC: jax.Array, *, gan: GAN,
               gradient_penalty: float = 0.0, r1_gamma: float = 0.0, ema_decay: float = 0.999,
               d_ema_decay: float = 0.999,
               rotation_d_weight: float = 0.0,
               rotation_g_weight: float = 0.0, augment_policy: tuple[str, ...] = (),
               contrastive_weight: float = 0.0, contrastive_temperature: float = 0.2,
               code_weights: tuple[float, float] = (0.0, 0.0), code_real_weight: float = 0.0,
               code_pair_weight: float = 0.0, code_neighbour: tuple[float, float] = (0.0, 5.0), code_noise_weight: float = 0.0, code_consistency: tuple[float, float, int] = (0.0, 0.95, 0),
               code_warmup: int = 0,
               neighbours: jax.Array | None = None,
               labelled: tuple[jax.Array, jax.Array] | None = None, supervised_weight: float = 1.0,
               unsupervised_weight: float = 1.0, entropy_weight: float = 0.0,
               class_consistency: tuple[float, float, int] = (0.0, 0.95, 0), class_neighbour_weight: float = 0.0,
               labelled_augment_policy: tuple[str, ...] | None = None, feature_matching: bool = False,
               batch_sharding: jax.sharding.Sharding | None = None, skip_nonfinite: bool = False,
               debug_nan_step: int = -1, lean_views: bool = False,
               views_policy: tuple[str, ...] = augment.parse_policy(VIEWS_AUGMENT),
               ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One GAN update: a discriminator update per real batch, then a generator update.

  Args:
    state: the train state (see module docstring).
    real_DxBxHxWxC: `n_dis` batches of real images in [-1, 1]; each generated batch has
      the same size B.
    gan: modules, optimizers and loss.
    gradient_penalty: weight of the WGAN-GP penalty (0 disables it).
    r1_gamma: gamma of the R1 penalty (gamma / 2 x mean ||grad D(real)||^2; 0 disables it).
    ema_decay: decay of the generator EMA; early steps use min(decay, (1+t)/(10+t)).
    d_ema_decay: decay of the discriminator's EMA, kept when the state has `d_ema_params`
      (`config.d_ema_decay` > 0), the same way; the evaluator reads its heads from it.
    rotation_d_weight, rotation_g_weight: SS-GAN's self-supervision (Chen et al. 2019):
      the discriminator also predicts which of 4 rotations was applied to each real
      image (weight on its loss), and the generator is rewarded when the rotations of
      its images are predictable (weight on its loss). 0 and 0 is a plain GAN.
    augment_policy: DiffAugment transformations (`augment.POLICIES`) applied to every
      image the discriminator judges as real or fake, in both updates.
    contrastive_weight, contrastive_temperature: a SimCLR loss (NT-Xent) on two
      translated-and-cut-out views of each real image, through D's projection head
      (as in ContraD, Jeong & Shin 2021); 0 disables it.
    code_weights: InfoGAN's (categorical, continuous) weights: the Q head's loss of
      recovering the codes of the generated images (as D judges them) is added to both
      players' losses (Chen et al. 2016). Used when `gan` has codes.
    code_warmup: steps over which the categorical weight rises linearly from 0 (0: none).
    code_real_weight: weight of minus the mutual information between real images (as D
      judges them) and Q's categorical predictions, in D's loss (0: plain InfoGAN).
    code_pair_weight: weight of minus the mutual information between Q's categorical
      predictions on two translated-and-cut-out views of each real image, in D's loss.
    code_neighbour: (weight, entropy weight) of SCAN's neighbour term on Q's categorical
      predictions, in D's loss: weight x (`losses.neighbour_agreement_loss` of view 0 of each
      real image against view 1 of its nearest other image in the batch, by D's `projection`
      (else `pre_logits`) on view 0, - entropy weight x the entropy of view 0's mean prediction).
    neighbours: with mined neighbours (`infogan.neighbour_k`, `ssl.neighbour_k`),
      `D x B x H x W x C` images in [-1, 1], a neighbour of each real image; the neighbour
      terms then pair view 0 of each real image with an augmented view of its neighbour
      (`losses.neighbour_consistency_loss`), Q's term instead of searching the batch.
    class_neighbour_weight: weight of that pairing on the K+1 classifier's class
      predictions (needs `labelled` and `neighbours`), in D's loss.
    code_noise_weight: weight of Q's error in recovering the noise of the generated images
      (ClusterGAN), in both losses; `gan`'s Q must have the `latent_dim` outputs for it
      after the continuous codes' (`make_gan` adds them with `config.infogan.noise_weight`).
    code_consistency, class_consistency: (weight, confidence threshold, first step) of
      FixMatch's consistency term (`losses.pseudo_label_loss`) on Q's categorical predictions
      and on the K+1 classifier's, for the real batch: the weak view is translated, the strong
      one translated and cut out. Weight 0 disables each; before its first step it counts 0.
    labelled: the K+1 discriminator's labelled batches (images `D x L x H x W x C` in
      [-1, 1], int labels `D x L`), one per discriminator update; None without
      semi-supervision. The labels of all other images never reach a loss.
    supervised_weight, unsupervised_weight: weights of the K+1 discriminator's
      cross-entropy on `labelled` and of its real/fake loss (0 for the supervised-only control).
    entropy_weight: weight of the mean entropy of D's class predictions on the real batch
      (Bad GAN's conditional entropy; minimised).
    labelled_augment_policy: DiffAugment transformations of the labelled images (None:
      `augment_policy`).
    feature_matching: the generator's loss is Salimans et al.'s feature matching on D's
      `pre_logits` (against the last real batch) instead of the adversarial one.
    batch_sharding: how a batch is split over the devices; the latents of generated
      batches are constrained to it, else XLA may run the generator whole on every device.
    skip_nonfinite: a discriminator or generator update whose loss or gradients are not
      all finite leaves its network's parameters, optimizer state and statistics (and the
      generator's EMA) as they were; the step still counts. Metrics d_skipped (updates of
      this step, 0 to n_dis) and g_skipped (0 or 1) count them; a skipped update's own
      loss and gradient-norm metrics stay non-finite.
    debug_nan_step: for tests only: at this step (-1: never) both losses are multiplied
      by NaN, so their gradients are NaN too, as in a diverged run.
    lean_views: D's real/fake loss (and R1) judges view 0 of the real batch instead of an
      augmented copy of its own, and the consistency terms' weak view goes through D forward
      only (its targets carry no gradient): up to 1 2/3 batches fewer of D's work per
      update. View 0 is made by `views_policy`, so `augment_policy` must be the same
      (`validate_config` checks `config.lean_views`). Without views it changes nothing.
    views_policy: the transformations (`augment.POLICIES`) of the real images' views and
      of the mined neighbours, which the contrastive, paired, neighbour and consistency
      terms compare (the consistency terms' weak view is translated only).
  Returns:
    The new state and scalar metrics: d_loss, g_loss, d_real, d_fake (mean logits),
    d_grad_norm, g_grad_norm, d_param_norm, g_param_norm (global L2 norms), gp when
    the penalty is on, r1 with R1, d_rotation_loss / d_rotation_acc and g_rotation_loss when
    rotation is on, d_contrastive_loss / d_contrastive_acc when the contrastive loss is,
    d_code_loss / d_code_acc (Q's accuracy on D's fakes) / g_code_loss and
    d_code_continuous_loss with InfoGAN codes, d_code_noise_loss / g_code_noise_loss with
    the noise term, d_code_pair_mi (nats) with the paired term, d_code_neighbour_loss and
    d_code_neighbour_marginal_entropy with the neighbour term, d_code_consistency_loss /
    d_code_consistency_kept and d_class_consistency_loss / d_class_consistency_kept (the
    fraction of confident images) with the consistency terms, d_class_neighbour_loss with the
    classifier's neighbour term, d_supervised_loss / d_supervised_acc
    with labels, g_feature_matching with feature matching.
  """
  step = state["step"]

  def poison(loss):  # A product, not a select: the gradients turn NaN too, as in a real divergence.
    return loss * jnp.where(step == debug_nan_step, jnp.nan, 1.0) if debug_nan_step >= 0 else loss

  key = jax.random.fold_in(state["rng"], step)
  d_key, g_key = jax.random.split(key)
  g_vars = state["generator"]
  n_dis, batch_size = real_DxBxHxWxC.shape[:2]
  categorical_weight = code_weights[0] if gan.num_categories else 0.0
  # A traced factor (not a Python branch): one compiled step serves the whole run.
  categorical_ramp = jnp.minimum(1.0, step / code_warmup) if code_warmup else 1.0
  continuous_weight = code_weights[1] if gan.num_continuous else 0.0

  def generate(g_params, z_key):
    z, categories, continuous = sample_latents(z_key, batch_size, gan)
    if batch_sharding is not None:
      z = jax.lax.with_sharding_constraint(z, batch_sharding)
    images, updates = gan.generator.apply({**g_vars, "params": g_params}, z, train=True, mutable=["batch_stats"])
    return images, updates["batch_stats"], (categories, continuous, z[:, :gan.latent_dim])

  def code_losses(features, fakes: slice, codes, prefix):
    """InfoGAN's terms on the fakes' Q outputs: (weighted sum, metrics)."""
    total, aux = 0.0, {}
    if categorical_weight:
      loss, acc = losses.over_heads(lambda l: losses.classification_loss(l, codes[0]), code_logits(features)[fakes])
      total += categorical_weight * categorical_ramp * loss
      aux.update({f"{prefix}_code_loss": loss, **({"d_code_acc": acc} if prefix == "d" else {})})
    # Q's continuous outputs: the continuous codes, then (with the noise term) the noise.
    c = gan.num_continuous
    if continuous_weight:
      loss = losses.continuous_code_loss(features["code_mean"][fakes, :c], codes[1])
      total += continuous_weight * loss
      aux[f"{prefix}_code_continuous_loss"] = loss
    if code_noise_weight:
      loss = losses.continuous_code_loss(features["code_mean"][fakes, c:], codes[2])
      total += code_noise_weight * loss
      aux[f"{prefix}_code_noise_loss"] = loss
    return total, aux

  # D's non-parameter state: the power-iteration vectors of spectral norms ({} without them),
  # advanced once per discriminator update.
  d_stats = {k: v for k, v in state["discriminator"].items() if k != "params"}

  def discriminate(d_params, stats, x, update: bool = False):
    """(logits, features, new stats) of D on images `x`."""
    if not stats:
      return *gan.discriminator.apply({"params": d_params}, x), stats
    if not update:
      return *gan.discriminator.apply({"params": d_params, **stats}, x, train=False), stats
    out, new_stats = gan.discriminator.apply({"params": d_params, **stats}, x, train=True, mutable=list(stats))
    return *out, new_stats

  def discriminator_update(carry, inputs):
    d_params, d_stats, d_opt_state, bank = carry
    real, key, labelled_batch, update_index, neighbour_batch = inputs
    z_key, gp_key = jax.random.split(key)
    # Further streams are fold_in(key, i) with i >= 2: with threefry-partitionable keys
    # (JAX's default) fold_in(key, i) equals split(key, n)[i], so 0 and 1 are taken above.
    rot_key = jax.random.fold_in(key, 4)
    fake, _, codes = generate(g_vars["params"], z_key)
    fake = jax.lax.stop_gradient(fake)
    pair_weight = code_pair_weight if gan.num_categories else 0.0
    neighbour_weight = code_neighbour[0] if gan.num_categories else 0.0
    consistency = {}  # The heads with a consistency term: (weight, threshold).
    if gan.num_categories and code_consistency[0]:
      consistency["code"] = code_consistency
    if labelled_batch is not None and class_consistency[0]:
      consistency["class"] = class_consistency
    class_neighbour = class_neighbour_weight if labelled_batch is not None and neighbour_batch is not None else 0.0
    in_batch_neighbours = neighbour_weight and neighbour_batch is None  # Pairs view 0 with view 1.
    # Views of the real batch, augmented by `views_policy`: two for the contrastive, paired
    # and neighbour terms; view0 is also the strong view of the consistency terms.
    views = (2 if contrastive_weight or pair_weight or in_batch_neighbours
             else 1 if consistency or class_neighbour or neighbour_weight else 0)
    lean = lean_views and views
    judged = {"fake": fake} if lean else {"real": real, "fake": fake}
    if labelled_batch is not None:
      judged["labelled"] = labelled_batch[0]
    policies = {"real": augment_policy, "fake": augment_policy,
                "labelled": augment_policy if labelled_augment_policy is None else labelled_augment_policy}
    streams = {"real": 2, "fake": 3, "labelled": 5}  # 4 is rot_key.
    judged = {name: augment.diff_augment(jax.random.fold_in(key, streams[name]), x, policies[name])
              for name, x in judged.items()}
    if rotation_d_weight:
      turns = jax.random.randint(rot_key, (batch_size,), 0, 4)
      judged["rotated"] = losses.rotate90(real, turns)
    for i in range(views):
      judged[f"view{i}"] = augment.diff_augment(jax.random.fold_in(key, 10 + i), real, views_policy)
    if neighbour_batch is not None and (neighbour_weight or class_neighbour):
      judged["neighbour"] = augment.diff_augment(jax.random.fold_in(key, 13), neighbour_batch, views_policy)
    weak_features = None
    if consistency:  # Their weak view: translated only.
      weak = augment.diff_augment(jax.random.fold_in(key, 12), real, ("translation",))
      if lean:  # Targets only: no backward pass through D for it.
        weak_features = jax.lax.stop_gradient(discriminate(d_params, d_stats, weak)[1])
      else:
        judged["weak"] = weak
    images, part = _concat(judged)
    if lean:
      part["real"] = part["view0"]
      judged["real"] = judged["view0"]

    def loss_fn(d_params):
      extras = {}
      # One pass over all images together: the discriminator has no batch-dependent layers.
      logits, features, new_stats = discriminate(d_params, d_stats, images, update=True)
      real_logits, fake_logits = logits[part["real"]], logits[part["fake"]]
      loss = gan.loss.discriminator(real_logits, fake_logits)
      if labelled_batch is not None:
        loss *= unsupervised_weight
      aux = {"d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
      code_loss, code_aux = code_losses(features, part["fake"], codes, "d")
      loss += code_loss
      aux.update(code_aux)
      if code_real_weight and gan.num_categories:
        mi_loss, conditional, marginal = losses.over_heads(losses.mutual_information_loss,
                                                           code_logits(features)[part["real"]])
        loss += code_real_weight * mi_loss
        aux.update(d_code_real_entropy=conditional, d_code_real_marginal_entropy=marginal)
      if pair_weight:
        pair_mi = -losses.over_heads(losses.paired_mutual_information_loss,
                                     code_logits(features)[part["view0"]], code_logits(features)[part["view1"]])
        loss -= pair_weight * pair_mi
        aux["d_code_pair_mi"] = pair_mi
      if neighbour_weight:
        embeddings = pairing_embedding(features)[part["view0"]]
        q_heads = code_logits(features)
        if "neighbour" in part:
          nn_loss = losses.over_heads(losses.neighbour_consistency_loss, q_heads[part["view0"]],
                                      q_heads[part["neighbour"]])
        else:
          nn_loss, _ = losses.over_heads(
              lambda l0, l1: losses.neighbour_agreement_loss(
                  l0, l1, embeddings, (bank["embeddings"], bank["log_probs"]) if bank else None),
              q_heads[part["view0"]], q_heads[part["view1"]])
        if bank:  # This batch's entries for the queue.
          extras.update(embeddings=embeddings / jnp.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-6),
                        log_probs=jax.nn.log_softmax(q_heads[part["view0"]]))  # One head: checked.
        _, _, marginal = losses.over_heads(losses.mutual_information_loss, q_heads[part["view0"]])
        loss += neighbour_weight * (nn_loss - code_neighbour[1] * marginal)
        aux.update(d_code_neighbour_loss=nn_loss, d_code_neighbour_marginal_entropy=marginal)
      if class_neighbour:
        head = features["class_logits"]
        class_nn_loss = losses.neighbour_consistency_loss(head[part["view0"]], head[part["neighbour"]])
        loss += class_neighbour * class_nn_loss
        aux["d_class_neighbour_loss"] = class_nn_loss
      for name, (weight, threshold, start) in consistency.items():
        head = head_logits(features, name)
        weak_head = head[part["weak"]] if weak_features is None else head_logits(weak_features, name)
        con_loss, kept = losses.over_heads(lambda weak, strong: losses.pseudo_label_loss(weak, strong, threshold),
                                           weak_head, head[part["view0"]])
        loss += weight * (step >= start) * con_loss
        aux.update({f"d_{name}_consistency_loss": con_loss, f"d_{name}_consistency_kept": kept})
      if labelled_batch is not None:
        sup_loss, sup_acc = losses.classification_loss(features["class_logits"][part["labelled"]], labelled_batch[1])
        loss += supervised_weight * sup_loss
        aux.update(d_supervised_loss=sup_loss, d_supervised_acc=sup_acc)
        if entropy_weight:
          _, entropy, _ = losses.mutual_information_loss(features["class_logits"][part["real"]])
          loss += entropy_weight * entropy
          aux["d_class_entropy"] = entropy
      if rotation_d_weight:
        rot_loss, rot_acc = losses.rotation_loss(features["rotation_logits"][part["rotated"]], turns)
        loss += rotation_d_weight * rot_loss
        aux.update(d_rotation_loss=rot_loss, d_rotation_acc=rot_acc)
      if contrastive_weight:
        z = features["projection"]
        con_loss, con_acc = losses.nt_xent(z[part["view0"]], z[part["view1"]], contrastive_temperature)
        loss += contrastive_weight * con_loss
        aux.update(d_contrastive_loss=con_loss, d_contrastive_acc=con_acc)
      if gradient_penalty:
        gp = losses.gradient_penalty(lambda x: discriminate(d_params, d_stats, x)[0], real, fake, gp_key)
        loss += gradient_penalty * gp
        aux["gp"] = gp
      if r1_gamma:
        r1 = losses.r1_penalty(lambda x: discriminate(d_params, d_stats, x)[0], judged["real"])
        loss += 0.5 * r1_gamma * r1
        aux["r1"] = r1
      return poison(loss), (aux, new_stats, extras)

    (loss, (aux, new_stats, extras)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
    if bank:  # The queue's oldest batch makes way: slot (update count) mod (queue / batch).
      slot = (step * n_dis + update_index) % (bank["embeddings"].shape[0] // batch_size) * batch_size
      bank = jax.tree.map(lambda b, x: jax.lax.dynamic_update_slice_in_dim(b, jax.lax.stop_gradient(x), slot, 0),
                          bank, {k: extras[k] for k in bank})
    updates, new_opt_state = gan.d_tx.update(grads, d_opt_state, d_params)
    new = (optax.apply_updates(d_params, updates), new_stats, new_opt_state, bank)
    metrics = {"d_loss": loss, "d_grad_norm": optax.tree.norm(grads), **aux}
    if skip_nonfinite:
      ok = _all_finite((loss, grads))
      new = _keep_if(ok, new, carry)
      metrics["d_skipped"] = 1 - ok.astype(jnp.int32)
    return new, metrics

  (d_params, d_stats, d_opt_state, bank), d_metrics = repeat(
      discriminator_update, (state["discriminator"]["params"], d_stats, state["d_opt_state"], state.get("code_bank", {})),
      (real_DxBxHxWxC, jax.random.split(d_key, n_dis), labelled, jnp.arange(n_dis), neighbours), n_dis)

  z_key, rot_key = g_key, jax.random.fold_in(g_key, 1)

  def generator_loss(g_params):
    fake, batch_stats, codes = generate(g_params, z_key)
    judged = {"fake": augment.diff_augment(jax.random.fold_in(g_key, 2), fake, augment_policy)
              if augment_policy else fake}
    if rotation_g_weight:
      turns = jax.random.randint(rot_key, (batch_size,), 0, 4)
      judged["rotated"] = losses.rotate90(fake, turns)
    if feature_matching:  # D's view of the last real batch, augmented as the fakes are.
      real = real_DxBxHxWxC[-1]
      judged["real"] = (augment.diff_augment(jax.random.fold_in(g_key, 3), real, augment_policy)
                        if augment_policy else real)
    images, part = _concat(judged)
    logits, features, _ = discriminate(d_params, d_stats, images)
    aux = {}
    if feature_matching:
      loss = losses.feature_matching(features["pre_logits"][part["real"]], features["pre_logits"][part["fake"]])
      aux["g_feature_matching"] = loss
    else:
      loss = gan.loss.generator(logits[part["fake"]])
    code_loss, code_aux = code_losses(features, part["fake"], codes, "g")
    loss += code_loss
    aux.update(code_aux)
    if rotation_g_weight:
      rot_loss, _ = losses.rotation_loss(features["rotation_logits"][part["rotated"]], turns)
      loss += rotation_g_weight * rot_loss
      aux["g_rotation_loss"] = rot_loss
    return poison(loss), (batch_stats, aux)

  (g_loss, (batch_stats, g_aux)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(g_vars["params"])
  updates, g_opt_state = gan.g_tx.update(g_grads, state["g_opt_state"], g_vars["params"])
  g_params = optax.apply_updates(g_vars["params"], updates)
  decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
  g_ema_params = optax.incremental_update(g_params, state["g_ema_params"], 1.0 - decay)
  d_ema = {}
  if "d_ema_params" in state:  # After the skip check of D's updates: a skipped one left d_params as they were.
    d_decay = jnp.minimum(d_ema_decay, (1.0 + step) / (10.0 + step))
    d_ema = {"d_ema_params": optax.incremental_update(d_params, state["d_ema_params"], 1.0 - d_decay)}
  if skip_nonfinite:
    g_ok = _all_finite((g_loss, g_grads))
    g_params, batch_stats, g_opt_state, g_ema_params = _keep_if(
        g_ok, (g_params, batch_stats, g_opt_state, g_ema_params),
        (g_vars["params"], g_vars["batch_stats"], state["g_opt_state"], state["g_ema_params"]))
    g_aux["g_skipped"] = 1 - g_ok.astype(jnp.int32)

  new_state = {
      **state,
      "step": step + 1,
      "generator": {**g_vars, "params": g_params, "batch_stats": batch_stats},
      "discriminator": {**state["discriminator"], **d_stats, "params": d_params},
      "g_opt_state": g_opt_state,
      "d_opt_state": d_opt_state,
      "g_ema_params": g_ema_params,
      **d_ema,
      **({"code_bank": bank} if bank else {}),
  }
  metrics = {k: v.sum() if k == "d_skipped" else v.mean() for k, v in d_metrics.items()}
  metrics.update(g_aux, g_loss=g_loss, g_grad_norm=optax.tree.norm(g_grads),
                 g_param_norm=optax.tree.norm(g_params), d_param_norm=optax.tree.norm(d_params))
  return new_state, metrics


def make_train_fn(gan: GAN, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_examples: int):
  """`train_fn(state, images_u8[, labelled_u8, labels]) -> (state, metrics)`: `config.steps_per_call`
  steps in one call.

  `images_u8` is the whole training set (uint8 `N x H x W x C`) resident on the
  devices, replicated or split along the data axis; each step gathers its own batches
  from it by `data.batch_indices`, so the loop copies nothing between host and device.
  With `config.ssl.labels_per_class`, `labelled_u8` and `labels` are the labelled subset
  (replicated), batched the same way; no other labels are passed.
  Metrics come back stacked, one row per step.
  """
  per_step = config.n_dis * config.batch_size
  data_key = seed_keys(config.seed)["data"]
  rotation_d_weight, rotation_g_weight = rotation_weights(config)
  contrastive_weight, contrastive_temperature, _ = contrastive_settings(config)
  code, ssl = code_settings(config), ssl_settings(config)
  labelled_key, labelled_batch = seed_keys(config.seed)["labelled"], ssl.batch_size or config.batch_size
  step_fn = functools.partial(train_step, gan=gan, gradient_penalty=config.gradient_penalty,
                              r1_gamma=config.get("r1_gamma", 0.0),
                              ema_decay=config.ema_decay, d_ema_decay=config.get("d_ema_decay", 0.0),
                              rotation_d_weight=rotation_d_weight,
                              rotation_g_weight=rotation_g_weight,
                              augment_policy=augment.parse_policy(config.get("augment", "")),
                              contrastive_weight=contrastive_weight,
                              contrastive_temperature=contrastive_temperature,
                              code_weights=(code.categorical_weight, code.continuous_weight),
                              code_real_weight=code.real_weight, code_pair_weight=code.pair_weight,
                              code_neighbour=(code.neighbour_weight, code.neighbour_entropy_weight),
                              code_noise_weight=code.noise_weight,
                              code_consistency=(code.consistency_weight, code.confidence_threshold,
                                                code.consistency_start),
                              code_warmup=code.categorical_warmup,
                              supervised_weight=ssl.supervised_weight, unsupervised_weight=ssl.unsupervised_weight,
                              entropy_weight=ssl.entropy_weight,
                              class_consistency=(ssl.consistency_weight, ssl.confidence_threshold,
                                                 ssl.consistency_start),
                              class_neighbour_weight=ssl.neighbour_weight,
                              labelled_augment_policy=labelled_augment_policy(config),
                              feature_matching=bool(ssl.labels_per_class and ssl.feature_matching),
                              batch_sharding=parallel.batch_sharded(mesh),
                              skip_nonfinite=config.get("skip_nonfinite_updates", False),
                              debug_nan_step=config.get("debug_nan_step", -1),
                              lean_views=config.get("lean_views", False),
                              views_policy=views_policy(config))
  batch_sharding = parallel.batch_sharded(mesh, batch_axis=1)
  neighbour_key = jax.random.fold_in(data_key, 1)  # Which of its k neighbours each image meets.
  _, k, refresh = neighbour_mining(config)

  def one_step(state, images_u8, labelled_u8, labels):
    idx = data.batch_indices(data_key, state["step"], num_examples=num_examples, batch_size=per_step)
    real = data.to_model_range(images_u8[idx])
    real = real.reshape(config.n_dis, config.batch_size, *real.shape[1:])
    neighbours = None
    if "neighbours" in state:
      state = jax.lax.cond(state["step"] % refresh == 0,
                           lambda s: {**s, "neighbours": mine_neighbours(gan, s["discriminator"], images_u8, k)},
                           lambda s: s, state)
      pick = jax.random.randint(jax.random.fold_in(neighbour_key, state["step"]), idx.shape, 0, k)
      neighbours = data.to_model_range(images_u8[state["neighbours"][idx, pick]])
      neighbours = jax.lax.with_sharding_constraint(neighbours.reshape(real.shape), batch_sharding)
    labelled = None
    if labelled_u8 is not None:  # One labelled batch per discriminator update.
      idx = jnp.stack([data.batch_indices(labelled_key, state["step"] * config.n_dis + i,
                                          num_examples=labelled_u8.shape[0], batch_size=labelled_batch)
                       for i in range(config.n_dis)])
      labelled = (jax.lax.with_sharding_constraint(data.to_model_range(labelled_u8[idx]), batch_sharding),
                  labels[idx])
    return step_fn(state, jax.lax.with_sharding_constraint(real, batch_sharding), labelled=labelled,
                   neighbours=neighbours)

  def train_fn(state, images_u8, labelled_u8=None, labels=None):
    return repeat(lambda s, _: one_step(s, images_u8, labelled_u8, labels), state, None, config.steps_per_call)

  replicated = parallel.replicated(mesh)
  return jax.jit(train_fn, donate_argnums=0, out_shardings=(replicated, replicated))


def refit_inputs(features: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """(what Q's heads read, the embedding neighbours are mined by), float32: what refit heads
  are fitted on (`make_refit_fn`)."""
  return features["code_input"].astype(jnp.float32), pairing_embedding(features).astype(jnp.float32)


def refit_head_params(dense: dict[str, Any], num_heads: int) -> dict[str, Any]:
  """Q's `code_refit_hidden_{j}` / `code_refit_{j}` params from `code_refit.fit_heads`' heads."""
  return {name: jax.tree.map(lambda x, j=j: x[j], dense[layer]) for j in range(num_heads)
          for layer, name in (("hidden", f"code_refit_hidden_{j}"), ("output", f"code_refit_{j}"))}


def make_refit_fn(gan: GAN, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """`refit_fn(state, images_u8) -> (state, losses)`, jit-compiled: Q's `infogan.refit_heads`
  heads fitted afresh (`code_refit.fit_heads`) on D's frozen features of the uint8
  training images, with neighbours mined by D's embedding of the same images, and written
  into D's params (and, with `d_ema_decay`, into its EMA's, fitted on the EMA's own
  features); `code_refit_step` set to the state's step. `losses`: each head's SCAN loss
  on the training images, `R` (or `2 x R`: online D, then its EMA)."""
  code = code_settings(config)
  fit = functools.partial(code_refit.fit_heads, num_heads=code.refit_heads, hidden=code.hidden,
                          categories=code.categories, steps=code.refit_steps, batch_size=code.refit_batch_size,
                          learning_rate=code.refit_learning_rate, entropy_weight=code.neighbour_entropy_weight,
                          dim=code.refit_dim, act=heads.REFIT_ACTIVATION)

  def refit_params(params, variables, images_u8, key):
    inputs, embeddings = map_discriminator(gan, {**variables, "params": params}, images_u8, refit_inputs)
    dense, head_losses = fit(key, inputs, nearest_neighbours(embeddings, code.refit_k))
    fitted = refit_head_params(dense, code.refit_heads)
    params = {**params, **{name: jax.tree.map(lambda new, old: new.astype(old.dtype), fitted[name], params[name])
                           for name in fitted}}
    return params, head_losses

  def refit_fn(state, images_u8):
    key = jax.random.fold_in(jax.random.fold_in(state["rng"], state["step"]), 0x5CA)
    state = dict(state)
    params, head_losses = refit_params(state["discriminator"]["params"], state["discriminator"], images_u8, key)
    state["discriminator"] = {**state["discriminator"], "params": params}
    if "d_ema_params" in state:
      state["d_ema_params"], ema_losses = refit_params(state["d_ema_params"], state["discriminator"], images_u8, key)
      head_losses = jnp.concatenate([head_losses, ema_losses])
    state["code_refit_step"] = state["step"]
    return state, head_losses
  replicated = parallel.replicated(mesh)
  return jax.jit(refit_fn, donate_argnums=0, out_shardings=(replicated, replicated))


def make_ema_variables_fn(gan: GAN, seed: int, num_stat_samples: int = 1024):
  """`ema_variables(state)`: the EMA generator's variables, ready to sample from.

  The EMA generator needs BatchNorm statistics of its own: the training generator's
  running statistics describe other weights. They are recomputed on `num_stat_samples`
  fixed latents ("standing statistics"), so samples of a state are deterministic and
  independent of the batch they are drawn in.
  """
  z_stats = sample_latents(jax.random.fold_in(seed_keys(seed)["sample"], 1), num_stat_samples, gan)[0]
  batch_statistics = gan.generator.clone(bn_momentum=0.0)

  def ema_variables(state):
    variables = {**state["generator"], "params": state["g_ema_params"]}
    _, updates = batch_statistics.apply(variables, z_stats, train=True, mutable=["batch_stats"])
    return {**variables, **updates}

  return ema_variables


def make_sample_fn(gan: GAN, seed: int, num_stat_samples: int = 1024):
  """`sample(state, z_NxZ) -> images N x H x W x C` in [-1, 1] from the EMA generator
  (`make_ema_variables_fn`)."""
  ema_variables = make_ema_variables_fn(gan, seed, num_stat_samples)
  return jax.jit(lambda state, z: gan.generator.apply(ema_variables(state), z, train=False))


def make_generate_fn(gan: GAN, seed: int, batch_size: int):
  """`generate(state) -> sample_batch`, where `sample_batch(key)` is `batch_size` images in
  [-1, 1] from the EMA generator on fresh latents (codes included) drawn from `key`: what
  generation metrics score. The standing statistics are computed once per state."""
  ema_variables = jax.jit(make_ema_variables_fn(gan, seed))
  apply = jax.jit(lambda variables, key: gan.generator.apply(variables, sample_latents(key, batch_size, gan)[0],
                                                              train=False))

  def generate(state):
    variables = ema_variables(state)
    return lambda key: apply(variables, key)

  return generate


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------


LABELLED_SUBSET_FILE = "labelled_subset.json"


def load_labelled_subset(config: ml_collections.ConfigDict, workdir: str,
                         train: data.ImageDataset | None = None) -> data.ImageDataset:
  """The labelled training images of a semi-supervised run, chosen by `config.seed`.

  Their indices in the training split are saved in `workdir/labelled_subset.json` (with
  their labels), so an evaluation or a person can see which labels the run used. A
  resumed run checks that it draws the same subset. `train`: the training split, if loaded.
  """
  ssl = ssl_settings(config)
  train = train or data.load_split(config.data, "train", image_size=config.image_size, channels=config.channels)
  if train.labels is None:
    raise data.DatasetError(f"config.ssl.labels_per_class={ssl.labels_per_class}: {train.name} has no labels")
  indices = data.labelled_subset(train.labels, ssl.labels_per_class, config.seed, ssl.num_classes)
  path = os.path.join(workdir, LABELLED_SUBSET_FILE)
  record = {"dataset": train.name, "labels_per_class": ssl.labels_per_class, "seed": config.seed,
            "num_labels": len(indices), "indices": indices.tolist(), "labels": train.labels[indices].tolist()}
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if saved["indices"] != record["indices"] or saved["labels"] != record["labels"]:
      raise ValueError(f"{path} holds another labelled subset than config.seed={config.seed} and "
                       f"config.ssl.labels_per_class={ssl.labels_per_class} draw from {train.name}; "
                       "the data, seed or labels_per_class changed since this run started")
  elif jax.process_index() == 0:
    files.write_json(path, record)
  return data.ImageDataset(train.images[indices], train.labels[indices], ssl.num_classes,
                           f"{train.name} labelled subset ({len(indices)})")


CONFIG_FILE = "config.json"
_ABSENT = "(absent)"


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def config_changes(saved: dict, config: ml_collections.ConfigDict) -> dict[str, tuple[Any, Any]]:
  """`{dotted field: (saved value, value in config)}` for each field where the config a run
  saved (`saved`, as read from its config.json) and `config` differ."""
  old, new = _flatten(saved), _flatten(json.loads(json.dumps(config.to_dict())))
  return {k: (old.get(k, _ABSENT), new.get(k, _ABSENT)) for k in sorted(set(old) | set(new))
          if old.get(k, _ABSENT) != new.get(k, _ABSENT)}


def _fits(saved: dict, saved_shapes, field: str | None = None, value: Any = None,
          num_examples: int = 0) -> bool | None:
  """Whether the saved config (with `field` alone set to `value`) makes a train state that
  the checkpoint fits; None where that config cannot be built."""
  candidate = ml_collections.ConfigDict(saved)
  try:
    if field is not None:
      *parents, leaf = field.split(".")
      functools.reduce(operator.getitem, parents, candidate)[leaf] = value
    shapes = jax.eval_shape(functools.partial(init_state, make_gan(candidate), candidate, num_examples))
  except Exception:  # pylint: disable=broad-except
    return None
  return not checkpoints.shape_differences(saved_shapes, shapes)


def check_resumable(config: ml_collections.ConfigDict, workdir: str, manager, step: int, abstract_state,
                    num_examples: int = 0) -> None:
  """Raises ValueError unless the checkpoint at `step` restores into `abstract_state`
  (the train state `config` makes), naming the config fields that changed its shapes since
  the run saved `workdir/config.json`, or else the first leaf that differs. Fields that
  keep the shapes (total_steps, learning rates, ...) may change: they are logged.
  A checkpoint whose metadata cannot be read is a `checkpoints.CheckpointError`."""
  saved_shapes = checkpoints.saved_shapes(manager, step)
  differences = checkpoints.shape_differences(saved_shapes, abstract_state)
  saved_config = {}
  if os.path.isfile(path := os.path.join(workdir, CONFIG_FILE)):
    with open(path) as f:
      saved_config = json.load(f)
  changes = config_changes(saved_config, config) if saved_config else {}
  if not differences:
    if changes:
      logging.info("Resuming with fields changed since %s: %s.", path,
                   "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    return
  named = []
  # Fields are named only where the saved config itself still makes the checkpoint's state
  # (the code or config.json may have changed since); otherwise the arrays say it.
  if changes and _fits(saved_config, saved_shapes, num_examples=num_examples):
    named = [k for k, (_, new) in changes.items()
             if new != _ABSENT and _fits(saved_config, saved_shapes, k, new, num_examples) is False]
  fields = " and ".join(f"config.{k}={changes[k][1]!r} (saved: {changes[k][0]!r})" for k in named)
  fields += " changes its shapes (" if len(named) == 1 else " change its shapes ("
  raise ValueError(
      f"{os.path.join(str(manager.directory), str(step))} is a checkpoint of another train state than this config "
      "makes: " + (fields if named else "")
      + f"{len(differences)} arrays differ, e.g. {differences[0]}" + (")" if named else "")
      + "; resume with the saved values, or train in "
      "a new workdir; fields that keep the shapes, like total_steps, may change")


class StopSignals:
  """SIGTERM (a preemption notice) and SIGINT (Ctrl-C) as a request to stop the loop at a
  step that every process agrees on, so that all save that step; `restore()` puts the
  previous handlers back.

  One process: either signal sets a flag, read after each compiled call. Several: the
  step is JAX's preemption sync point (`multihost_utils.reached_preemption_sync_point`),
  which `jax.distributed.initialize` arms with a SIGTERM handler of its own in C++ (a
  Python handler would replace it, so SIGTERM is left alone); SIGINT is passed on to it
  as a SIGTERM. After one Ctrl-C a second one acts as before it (KeyboardInterrupt).
  A signal ignored when training starts (SIG_IGN, as for `nohup` or a background job) stays ignored.
  """

  def __init__(self, step: int):
    self.reason = None  # What asked to stop, for the log.
    self._previous = {}
    self._sync = jax.process_count() > 1
    if self._sync:
      try:  # Also tells the service the step this process starts from.
        multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:
        logging.warning("JAX's preemption service is off (jax_enable_preemption_service=False): SIGTERM and "
                        "SIGINT end this multi-process run without a checkpoint.")
        self._sync = None
        return
    if threading.current_thread() is not threading.main_thread():
      return  # Python lets only the main thread set handlers (a notebook's worker thread, say).
    for signum in (signal.SIGINT,) if self._sync else (signal.SIGTERM, signal.SIGINT):
      # None: a handler set outside Python, which Python could not put back.
      if signal.getsignal(signum) not in (signal.SIG_IGN, None):
        self._previous[signum] = signal.signal(signum, self._handle)

  def _handle(self, signum, frame):
    del frame
    self.reason = self.reason or signal.Signals(signum).name
    if signum == signal.SIGINT:  # Someone who presses Ctrl-C twice does not want to wait for the save.
      signal.signal(signum, self._previous[signum])
    if self._sync:
      os.kill(os.getpid(), signal.SIGTERM)

  def requested(self, step: int, steps_per_call: int) -> bool:
    """Whether to stop at `step`; call it after every compiled call, on every process."""
    if self._sync:
      # The service picks one step past the furthest any process has reported and says
      # yes at that step only. Reporting every step of the call in turn (Orbax's own
      # reports are turned off, `checkpoints.make_manager`) makes every process meet it
      # in the same call, whose last step is a multiple of steps_per_call, as resuming needs.
      if any(multihost_utils.reached_preemption_sync_point(s) for s in range(step - steps_per_call + 1, step + 1)):
        self.reason = "JAX's preemption sync point"  # Whichever process got the signal.
        return True
      return False
    return self.reason is not None

  def restore(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}


def _finite_mean(values: np.ndarray) -> float:
  """Mean of the finite values (NaN if none): a skipped update's metrics leave the average alone."""
  finite = values[np.isfinite(values)]
  return float(finite.mean()) if finite.size else float("nan")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       resume_command: str | None = None) -> dict[str, Any]:
  """Trains to `config.total_steps`, resuming from the latest checkpoint in `workdir`.

  Writes `workdir/checkpoints/` (Orbax), `workdir/samples/step_<step>.png` (EMA
  generator on a fixed noise), `workdir/tensorboard/` and `workdir/config.json`.
  Every `config.eval_every` steps (and at the end) the representation evaluator
  (`config.evals.representation`) logs eval/<row>/<metric> scalars to TensorBoard, and
  with `config.evals.generation.num_samples` the generation metrics eval/generation/<metric>
  (FID, KID, IS, precision, recall of the EMA generator; `evaluation.generation`).

  SIGTERM or SIGINT (`StopSignals`) stops training after the current compiled call: a
  checkpoint is written at that step (off the `save_every` grid if need be) and waited
  for, one log line names the step and how to resume (`resume_command`, the command line
  that started the run, if given), and the state at that step is returned. The previous
  signal handlers are back when this returns.
  Returns the final train state.
  """
  validate_config(config)
  os.makedirs(workdir, exist_ok=True)
  is_main_process = jax.process_index() == 0

  # Mesh and input.
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  # The training set lives on the devices (uint8), split over them along the data axis:
  # each process reads its own share, and each step's batch is a gather by
  # `data.batch_indices` from the global array (XLA gathers on the device holding each
  # image and all-reduces the batch), with no per-step host-to-device copy.
  train_data = data.load_process_share(config.data, "train", image_size=config.image_size,
                                       channels=config.channels, mesh=mesh)
  images_u8 = parallel.host_to_global(train_data.images, parallel.batch_sharded(mesh))
  num_examples = images_u8.shape[0]
  per_step = config.n_dis * config.batch_size
  if per_step > num_examples:
    raise ValueError(f"config.batch_size={config.batch_size} x config.n_dis={config.n_dis} images per step "
                     f"exceed the {num_examples} training images of {train_data.name}")
  replicated = parallel.replicated(mesh)
  logging.info("Training on %s: %d images %s (%d in this process), %d device(s).", train_data.name, num_examples,
               train_data.images.shape[1:], len(train_data), jax.device_count())

  # Model, optimizer and state: shapes first, then the real thing, restored or initialised.
  gan = make_gan(config)
  init_fn = functools.partial(init_state, gan, config, num_examples=num_examples)
  abstract_state = checkpoints.abstract_like(jax.eval_shape(init_fn), replicated)
  manager = checkpoints.make_manager(workdir, keep=config.keep)
  writer = metric_logging.MetricWriter(workdir, total_steps=0, initial_step=0, enabled=False)
  try:  # From here on, an error closes the manager (and the writer) on its way out.
    if (latest := manager.latest_step()) is not None:
      check_resumable(config, workdir, manager, latest, abstract_state, num_examples)
      state = checkpoints.restore(manager, abstract_state, latest)
      logging.info("Resumed from %s at step %d.", manager.directory, latest)
    else:
      state = jax.jit(init_fn, out_shardings=replicated)()
    step = int(state["step"])

    if step % config.steps_per_call:
      raise ValueError(f"the checkpoint is at step {step}, which config.steps_per_call={config.steps_per_call} "
                       "does not divide; resume with a steps_per_call that divides it")

    train_fn = make_train_fn(gan, config, mesh, num_examples)
    refit_fn = make_refit_fn(gan, config, mesh) if code_settings(config).refit_heads else None
    labelled = ()
    if ssl_settings(config).labels_per_class:
      parallel.check_batch_size(ssl_settings(config).batch_size or config.batch_size, mesh)
      subset = load_labelled_subset(config, workdir, train_data if jax.process_count() == 1 else None)
      labelled = tuple(jax.device_put(x, replicated) for x in (subset.images, subset.labels))
    sample_fn = make_sample_fn(gan, config.seed)
    sample_z, grid_columns = grid_latents(seed_keys(config.seed)["sample"], config.num_samples, gan)
    sample_z = jax.device_put(sample_z, replicated)
    writer = metric_logging.MetricWriter(workdir, total_steps=config.total_steps, initial_step=step,
                                         enabled=is_main_process)

    def save_samples(step):
      images = data.to_uint8(sample_fn(state, sample_z))  # On every process: a global computation.
      if is_main_process:
        visualize.save_png(os.path.join(workdir, "samples", f"step_{step}.png"),
                           visualize.image_grid(images, grid_columns or None))

    evaluator = None
    eval_every = config.get("eval_every", 0)
    if eval_every and step < config.total_steps:
      # Built now so that a missing split or unlabelled data fails before training, not at
      # step eval_every; the controls are evaluated at the first evaluation.
      initial = jax.jit(init_fn, out_shardings=replicated)()["discriminator"]
      evaluator = representation.make_evaluator(config, representation.get_config(config), gan.discriminator,
                                                initial, train=train_data if jax.process_count() == 1 else None,
                                                num_labels=len(labelled[1]) if labelled else 0)

    generation_settings = generation.get_config(config)
    generation_evaluator = None
    if eval_every and generation_settings.num_samples and step < config.total_steps:
      # Prepared now (the domain classifier trained or loaded, the reference statistics
      # computed or read from the cache), so that a problem shows before training.
      generation_evaluator = generation.make_evaluator(config, generation_settings,
                                                       train_data if jax.process_count() == 1 else None)
      generate_fn = make_generate_fn(gan, config.seed, generation_settings.batch_size)

    def run_evals(step):
      start = time.perf_counter()
      scalars = dict(evaluator.run(state))
      if generation_evaluator is not None:
        scores = generation_evaluator.run(generate_fn(state))
        scalars.update({f"eval/generation/{k}": scores[k] for k in generation.SCALARS})
      scalars["eval/seconds"] = time.perf_counter() - start
      writer.write_scalars(step, scalars)
      return scalars["eval/seconds"]

    if is_main_process:  # Every check passed: the config that trains is the one saved.
      files.write_json(os.path.join(workdir, CONFIG_FILE), config.to_dict())
    if step >= config.total_steps:
      logging.info("Step %d reached config.total_steps=%d: nothing to train.", step, config.total_steps)
    first_call_start = time.perf_counter()
    last_log_step, last_log_time = step, None
    pending_metrics = []  # One dict of device arrays per call since the last log.
    skip_nonfinite = config.get("skip_nonfinite_updates", False)
    stop = StopSignals(step)
    try:
      while step < config.total_steps:
        state, metrics = train_fn(state, images_u8, *labelled)
        pending_metrics.append(metrics)
        step += config.steps_per_call
        if last_log_time is None:  # First call: report compilation apart from throughput.
          jax.block_until_ready(state)
          logging.info("First call (compilation included): %.1f s.", time.perf_counter() - first_call_start)
          last_log_step, last_log_time = step, time.perf_counter()
        is_last = step == config.total_steps
        stopping = stop.requested(step, config.steps_per_call) and not is_last
        if step % config.log_every == 0 or step % config.save_every == 0 or is_last or stopping:
          # Metrics reach the host only here, every step's at once. Checking them before
          # each save keeps a diverged state out of the checkpoints (non-finite parameters
          # show in the parameter norms and the losses). A skipped update's losses are
          # non-finite by nature; with skipping, the parameter norms must stay finite.
          checkpoints.check(manager)  # A failed write (a full disk) stops training here, before more is lost.
          steps = {k: np.concatenate([m[k] for m in jax.device_get(pending_metrics)]) for k in metrics}
          pending_metrics = []
          checked = [k for k in steps if k.endswith("_param_norm")] if skip_nonfinite else list(steps)
          bad = [k for k in checked if not np.isfinite(steps[k]).all()]
          if bad:
            last = manager.latest_step()
            raise FloatingPointError(
                f"non-finite {', '.join(bad)} between steps {step - len(steps[bad[0]])} and {step}; "
                + (f"the last checkpoint is step {last}" if last is not None else "no checkpoint was written")
                + ("" if skip_nonfinite else "; config.skip_nonfinite_updates=True skips such updates"))
          skipped = {k: int(steps[k].sum()) for k in ("d_skipped", "g_skipped") if k in steps}
          if any(skipped.values()):
            logging.warning("Skipped %d discriminator and %d generator update(s) with non-finite losses or "
                            "gradients between steps %d and %d.", skipped["d_skipped"], skipped["g_skipped"],
                            step - len(steps["g_skipped"]), step)
          summary = {k: skipped[k] if k in skipped else _finite_mean(v) for k, v in steps.items()}
          if step > last_log_step:
            summary["steps_per_sec"] = (step - last_log_step) / (time.perf_counter() - last_log_time)
            summary["images_per_sec"] = summary["steps_per_sec"] * per_step
          writer.write_scalars(step, summary)
          last_log_step, last_log_time = step, time.perf_counter()
        if is_last and refit_fn is not None:
          start = time.perf_counter()
          state, head_losses = refit_fn(state, images_u8)
          head_losses = np.asarray(jax.device_get(head_losses))
          logging.info("Refitted %d Q heads on the frozen discriminator in %.1f s; their SCAN losses: %s",
                       code_settings(config).refit_heads, time.perf_counter() - start,
                       " ".join(f"{v:.3f}" for v in head_losses))
          writer.write_scalars(step, {"refit_seconds": time.perf_counter() - start,
                                      "refit_loss_min": float(head_losses.min())})
        if step % config.save_every == 0 or is_last or (stopping and step not in manager.all_steps()):
          checkpoints.save(manager, step, state)
        if stopping:
          checkpoints.wait(manager)
          logging.info("Stopped by %s: the checkpoint at step %d is complete in %s; %s", stop.reason, step,
                       manager.directory, f"resume with the same command: {resume_command}" if resume_command
                       else "train again on the same workdir to resume")
          break
        if step % config.sample_every == 0 or is_last:
          save_samples(step)
        if evaluator is not None and (step % eval_every == 0 or is_last):
          last_log_time += run_evals(step)  # Evaluation time is not training throughput.
      checkpoints.wait(manager)
    finally:
      stop.restore()
  finally:
    for name, close in (("the checkpoint manager", manager.close), ("the TensorBoard writer", writer.close)):
      try:  # On the way out of an error (a full disk, say), that error is the one to report.
        close()
      except Exception as e:  # pylint: disable=broad-except
        logging.error("Closing %s failed: %s", name, e)
  return state
