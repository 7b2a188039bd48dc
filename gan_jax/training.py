"""GAN training: the train state, the jit-compiled update step and the training loop.

The train state is a plain dict pytree:
  step          int32 scalar, the number of generator updates done
  rng           uint32[2] key; the step's randomness is `fold_in(rng, step)`
  generator     flax variables {"params", "batch_stats"}
  discriminator flax variables {"params"}
  g_opt_state, d_opt_state   Optax states
  g_ema_params  exponential moving average of the generator params (samples use it)

`train_step(state, real)` is the whole GAN update: `n_dis` discriminator updates, each
on its own real batch, then one generator update and the EMA update.
"""

from __future__ import annotations

import functools
import operator
import os
import time
from typing import Any, NamedTuple

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax import augment
from gan_jax import checkpoints
from gan_jax import conv
from gan_jax import data
from gan_jax import files
from gan_jax import losses
from gan_jax import metric_logging
from gan_jax import models
from gan_jax import parallel
from gan_jax import visualize
from gan_jax.evaluation import representation

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "linear")
# Compute dtypes of `config.model.dtype`; parameters, optimizer state and losses stay float32.
COMPUTE_DTYPES = ("float32", "bfloat16")
# Streams of randomness derived from config.seed by fold_in, so adding one never moves another.
_INIT_STREAM, _TRAIN_STREAM, _DATA_STREAM, _SAMPLE_STREAM = range(4)


class GAN(NamedTuple):
  """The pure pieces of one GAN: linen modules, Optax transformations, the loss."""
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  loss: losses.AdversarialLoss
  latent_dim: int


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
  if not 0.0 <= config.ema_decay < 1.0:
    raise ValueError(f"config.ema_decay={config.ema_decay!r} must be in [0, 1)")
  if config.gradient_penalty < 0:
    raise ValueError(f"config.gradient_penalty={config.gradient_penalty!r} must be >= 0")
  for field, weight in zip(("d_weight", "g_weight"), rotation_weights(config)):
    if weight < 0:
      raise ValueError(f"config.rotation.{field}={weight!r} must be >= 0")
  for field, value in zip(("weight", "temperature", "projection_dim"), contrastive_settings(config)):
    if value < 0 or (field != "weight" and value == 0):
      raise ValueError(f"config.contrastive.{field}={value!r} must be {'>= 0' if field == 'weight' else 'positive'}")
  if config.get("eval_every", 0) < 0:
    raise ValueError(f"config.eval_every={config.eval_every!r} must be >= 0 (0: no evaluation during training)")
  representation.get_config(config)
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
  conv_backward = m.get("conv_backward", "phase")
  generator = module.Generator(image_size=config.image_size, channels=config.channels,
                               base_features=m.generator_features, conv_backward=conv_backward, dtype=dtype)
  discriminator = module.Discriminator(image_size=config.image_size, base_features=m.discriminator_features,
                                       stride1_convs=m.discriminator_stride1_convs,
                                       rotation_head=any(rotation_weights(config)),
                                       projection_dim=projection_dim if contrastive_weight else 0,
                                       conv_backward=conv_backward, dtype=dtype)
  return GAN(generator, discriminator,
             make_optimizer(config.g_optimizer, config.total_steps),
             make_optimizer(config.d_optimizer, config.total_steps * config.n_dis),
             losses.get_loss(config.loss), m.latent_dim)


def rotation_weights(config: ml_collections.ConfigDict) -> tuple[float, float]:
  """(discriminator, generator) weights of the SS-GAN rotation loss; (0, 0) in configs that predate it."""
  rotation = config.get("rotation") or {}
  return float(rotation.get("d_weight", 0.0)), float(rotation.get("g_weight", 0.0))


def contrastive_settings(config: ml_collections.ConfigDict) -> tuple[float, float, int]:
  """(weight, temperature, projection_dim) of D's contrastive loss; weight 0 in configs that predate it."""
  c = config.get("contrastive") or {}
  return float(c.get("weight", 0.0)), float(c.get("temperature", 0.2)), int(c.get("projection_dim", 128))


def seed_keys(seed: int) -> dict[str, jax.Array]:
  """The independent random streams of a run, from `config.seed`."""
  root = jax.random.PRNGKey(seed)
  return {name: jax.random.fold_in(root, stream) for name, stream in
          [("init", _INIT_STREAM), ("train", _TRAIN_STREAM), ("data", _DATA_STREAM), ("sample", _SAMPLE_STREAM)]}


def init_state(gan: GAN, config: ml_collections.ConfigDict) -> dict[str, Any]:
  """A fresh train state (pure: run it under `jax.jit` or `jax.eval_shape`)."""
  keys = seed_keys(config.seed)
  g_key, d_key = jax.random.split(keys["init"])
  z = jnp.zeros((1, gan.latent_dim), jnp.float32)
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
  }


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


def train_step(state: dict[str, Any], real_DxBxHxWxC: jax.Array, *, gan: GAN,
               gradient_penalty: float = 0.0, ema_decay: float = 0.999, rotation_d_weight: float = 0.0,
               rotation_g_weight: float = 0.0, augment_policy: tuple[str, ...] = (),
               contrastive_weight: float = 0.0, contrastive_temperature: float = 0.2,
               batch_sharding: jax.sharding.Sharding | None = None,
               ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One GAN update: a discriminator update per real batch, then a generator update.

  Args:
    state: the train state (see module docstring).
    real_DxBxHxWxC: `n_dis` batches of real images in [-1, 1]; each generated batch has
      the same size B.
    gan: modules, optimizers and loss.
    gradient_penalty: weight of the WGAN-GP penalty (0 disables it).
    ema_decay: decay of the generator EMA; early steps use min(decay, (1+t)/(10+t)).
    rotation_d_weight, rotation_g_weight: SS-GAN's self-supervision (Chen et al. 2019):
      the discriminator also predicts which of 4 rotations was applied to each real
      image (weight on its loss), and the generator is rewarded when the rotations of
      its images are predictable (weight on its loss). 0 and 0 is a plain GAN.
    augment_policy: DiffAugment transformations (`augment.POLICIES`) applied to every
      image the discriminator judges as real or fake, in both updates.
    contrastive_weight, contrastive_temperature: a SimCLR loss (NT-Xent) on two
      translated-and-cut-out views of each real image, through D's projection head
      (as in ContraD, Jeong & Shin 2021); 0 disables it.
    batch_sharding: how a batch is split over the devices; the latents of generated
      batches are constrained to it, else XLA may run the generator whole on every device.
  Returns:
    The new state and scalar metrics: d_loss, g_loss, d_real, d_fake (mean logits),
    d_grad_norm, g_grad_norm, d_param_norm, g_param_norm (global L2 norms), gp when
    the penalty is on, d_rotation_loss / d_rotation_acc and g_rotation_loss when
    rotation is on, d_contrastive_loss / d_contrastive_acc when the contrastive loss is.
  """
  step = state["step"]
  key = jax.random.fold_in(state["rng"], step)
  d_key, g_key = jax.random.split(key)
  g_vars = state["generator"]
  n_dis, batch_size = real_DxBxHxWxC.shape[:2]

  def generate(g_params, z_key):
    z = jax.random.normal(z_key, (batch_size, gan.latent_dim))
    if batch_sharding is not None:
      z = jax.lax.with_sharding_constraint(z, batch_sharding)
    images, updates = gan.generator.apply({**g_vars, "params": g_params}, z, train=True, mutable=["batch_stats"])
    return images, updates["batch_stats"]

  def discriminator_update(carry, inputs):
    d_params, d_opt_state = carry
    real, key = inputs
    z_key, gp_key = jax.random.split(key)
    # Further streams are fold_in(key, i) with i >= 2: with threefry-partitionable keys
    # (JAX's default) fold_in(key, i) equals split(key, n)[i], so 0 and 1 are taken above.
    rot_key = jax.random.fold_in(key, 4)
    fake, _ = generate(g_vars["params"], z_key)
    fake = jax.lax.stop_gradient(fake)
    images = [real, fake]
    if augment_policy:
      images = [augment.diff_augment(jax.random.fold_in(key, 2 + i), x, augment_policy) for i, x in enumerate(images)]
    if rotation_d_weight:
      turns = jax.random.randint(rot_key, (batch_size,), 0, 4)
      images.append(losses.rotate90(real, turns))
    if contrastive_weight:  # Two views of the real batch, augmented with translation and cutout.
      views = [augment.diff_augment(jax.random.fold_in(key, 10 + i), real, ("translation", "cutout"))
               for i in range(2)]
      images.extend(views)

    def loss_fn(d_params):
      # One pass over all images together: the discriminator has no batch-dependent layers.
      logits, features = gan.discriminator.apply({"params": d_params}, jnp.concatenate(images))
      real_logits, fake_logits = logits[:batch_size], logits[batch_size:2 * batch_size]
      loss = gan.loss.discriminator(real_logits, fake_logits)
      aux = {"d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
      if rotation_d_weight:
        rot_loss, rot_acc = losses.rotation_loss(features["rotation_logits"][2 * batch_size:3 * batch_size], turns)
        loss += rotation_d_weight * rot_loss
        aux.update(d_rotation_loss=rot_loss, d_rotation_acc=rot_acc)
      if contrastive_weight:
        z = features["projection"][-2 * batch_size:]
        con_loss, con_acc = losses.nt_xent(z[:batch_size], z[batch_size:], contrastive_temperature)
        loss += contrastive_weight * con_loss
        aux.update(d_contrastive_loss=con_loss, d_contrastive_acc=con_acc)
      if gradient_penalty:
        gp = losses.gradient_penalty(lambda x: gan.discriminator.apply({"params": d_params}, x)[0],
                                     real, fake, gp_key)
        loss += gradient_penalty * gp
        aux["gp"] = gp
      return loss, aux

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
    updates, d_opt_state = gan.d_tx.update(grads, d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, updates)
    return (d_params, d_opt_state), {"d_loss": loss, "d_grad_norm": optax.tree.norm(grads), **aux}

  (d_params, d_opt_state), d_metrics = repeat(
      discriminator_update, (state["discriminator"]["params"], state["d_opt_state"]),
      (real_DxBxHxWxC, jax.random.split(d_key, n_dis)), n_dis)

  z_key, rot_key = g_key, jax.random.fold_in(g_key, 1)

  def generator_loss(g_params):
    fake, batch_stats = generate(g_params, z_key)
    judged = augment.diff_augment(jax.random.fold_in(g_key, 2), fake, augment_policy) if augment_policy else fake
    if not rotation_g_weight:
      logits, _ = gan.discriminator.apply({"params": d_params}, judged)
      return gan.loss.generator(logits), (batch_stats, {})
    turns = jax.random.randint(rot_key, (batch_size,), 0, 4)
    logits, features = gan.discriminator.apply({"params": d_params},
                                               jnp.concatenate([judged, losses.rotate90(fake, turns)]))
    rot_loss, _ = losses.rotation_loss(features["rotation_logits"][batch_size:], turns)
    loss = gan.loss.generator(logits[:batch_size]) + rotation_g_weight * rot_loss
    return loss, (batch_stats, {"g_rotation_loss": rot_loss})

  (g_loss, (batch_stats, g_aux)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(g_vars["params"])
  updates, g_opt_state = gan.g_tx.update(g_grads, state["g_opt_state"], g_vars["params"])
  g_params = optax.apply_updates(g_vars["params"], updates)
  decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
  g_ema_params = optax.incremental_update(g_params, state["g_ema_params"], 1.0 - decay)

  new_state = {
      **state,
      "step": step + 1,
      "generator": {**g_vars, "params": g_params, "batch_stats": batch_stats},
      "discriminator": {**state["discriminator"], "params": d_params},
      "g_opt_state": g_opt_state,
      "d_opt_state": d_opt_state,
      "g_ema_params": g_ema_params,
  }
  metrics = {k: v.mean() for k, v in d_metrics.items()}
  metrics.update(g_aux, g_loss=g_loss, g_grad_norm=optax.tree.norm(g_grads),
                 g_param_norm=optax.tree.norm(g_params), d_param_norm=optax.tree.norm(d_params))
  return new_state, metrics


def make_train_fn(gan: GAN, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_examples: int):
  """`train_fn(state, images_u8) -> (state, metrics)`: `config.steps_per_call` steps in one call.

  `images_u8` is the whole training set (uint8 `N x H x W x C`) resident on the
  devices, replicated or split along the data axis; each step gathers its own batches
  from it by `data.batch_indices`, so the loop copies nothing between host and device.
  Metrics come back stacked, one row per step.
  """
  per_step = config.n_dis * config.batch_size
  data_key = seed_keys(config.seed)["data"]
  rotation_d_weight, rotation_g_weight = rotation_weights(config)
  contrastive_weight, contrastive_temperature, _ = contrastive_settings(config)
  step_fn = functools.partial(train_step, gan=gan, gradient_penalty=config.gradient_penalty,
                              ema_decay=config.ema_decay, rotation_d_weight=rotation_d_weight,
                              rotation_g_weight=rotation_g_weight,
                              augment_policy=augment.parse_policy(config.get("augment", "")),
                              contrastive_weight=contrastive_weight,
                              contrastive_temperature=contrastive_temperature,
                              batch_sharding=parallel.batch_sharded(mesh))
  batch_sharding = parallel.batch_sharded(mesh, batch_axis=1)

  def one_step(state, images_u8):
    idx = data.batch_indices(data_key, state["step"], num_examples=num_examples, batch_size=per_step)
    real = data.to_model_range(images_u8[idx])
    real = real.reshape(config.n_dis, config.batch_size, *real.shape[1:])
    return step_fn(state, jax.lax.with_sharding_constraint(real, batch_sharding))

  def train_fn(state, images_u8):
    return repeat(lambda s, _: one_step(s, images_u8), state, None, config.steps_per_call)

  replicated = parallel.replicated(mesh)
  return jax.jit(train_fn, donate_argnums=0, out_shardings=(replicated, replicated))


def make_sample_fn(gan: GAN, seed: int, num_stat_samples: int = 1024):
  """`sample(state, z_NxZ) -> images N x H x W x C` in [-1, 1] from the EMA generator.

  The EMA generator needs BatchNorm statistics of its own: the training generator's
  running statistics describe other weights. They are recomputed on `num_stat_samples`
  fixed latents ("standing statistics"), so samples of a state are deterministic and
  independent of the batch they are drawn in.
  """
  z_stats = jax.random.normal(jax.random.fold_in(seed_keys(seed)["sample"], 1), (num_stat_samples, gan.latent_dim))
  batch_statistics = gan.generator.clone(bn_momentum=0.0)

  @jax.jit
  def sample(state, z):
    variables = {**state["generator"], "params": state["g_ema_params"]}
    _, updates = batch_statistics.apply(variables, z_stats, train=True, mutable=["batch_stats"])
    return gan.generator.apply({**variables, **updates}, z, train=False)

  return sample


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains to `config.total_steps`, resuming from the latest checkpoint in `workdir`.

  Writes `workdir/checkpoints/` (Orbax), `workdir/samples/step_<step>.png` (EMA
  generator on a fixed noise), `workdir/tensorboard/` and `workdir/config.json`.
  Every `config.eval_every` steps (and at the end) the representation evaluator
  (`config.evals.representation`) logs eval/<row>/<metric> scalars to TensorBoard.
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
  init_fn = functools.partial(init_state, gan, config)
  abstract_state = checkpoints.abstract_like(jax.eval_shape(init_fn), replicated)
  manager = checkpoints.make_manager(workdir, keep=config.keep)
  if (latest := manager.latest_step()) is not None:
    state = checkpoints.restore(manager, abstract_state, latest)
    logging.info("Resumed from %s at step %d.", manager.directory, latest)
  else:
    state = jax.jit(init_fn, out_shardings=replicated)()
  step = int(state["step"])
  if is_main_process:
    files.write_json(os.path.join(workdir, "config.json"), config.to_dict())

  if step % config.steps_per_call:
    raise ValueError(f"the checkpoint is at step {step}, which config.steps_per_call={config.steps_per_call} "
                     "does not divide; resume with a steps_per_call that divides it")

  train_fn = make_train_fn(gan, config, mesh, num_examples)
  sample_fn = make_sample_fn(gan, config.seed)
  sample_z = jax.jit(lambda: jax.random.normal(seed_keys(config.seed)["sample"], (config.num_samples, gan.latent_dim)),
                     out_shardings=replicated)()
  writer = metric_logging.MetricWriter(workdir, total_steps=config.total_steps, initial_step=step,
                                       enabled=is_main_process)

  def save_samples(step):
    images = data.to_uint8(sample_fn(state, sample_z))  # On every process: a global computation.
    if is_main_process:
      visualize.save_png(os.path.join(workdir, "samples", f"step_{step}.png"), visualize.image_grid(images))

  evaluator = None
  eval_every = config.get("eval_every", 0)
  if eval_every and step < config.total_steps:
    # Built now so that a missing split or unlabelled data fails before training, not at
    # step eval_every; the controls are evaluated at the first evaluation.
    initial = jax.jit(init_fn, out_shardings=replicated)()["discriminator"]
    evaluator = representation.make_evaluator(config, representation.get_config(config), gan.discriminator,
                                              initial, train=train_data if jax.process_count() == 1 else None)

  def run_evals(step):
    start = time.perf_counter()
    scalars = dict(evaluator.run(state))
    scalars["eval/seconds"] = time.perf_counter() - start
    writer.write_scalars(step, scalars)
    return scalars["eval/seconds"]

  if step >= config.total_steps:
    logging.info("Step %d reached config.total_steps=%d: nothing to train.", step, config.total_steps)
  first_call_start = time.perf_counter()
  last_log_step, last_log_time = step, None
  pending_metrics = []  # One dict of device arrays per call since the last log.
  try:
    while step < config.total_steps:
      state, metrics = train_fn(state, images_u8)
      pending_metrics.append(metrics)
      step += config.steps_per_call
      if last_log_time is None:  # First call: report compilation apart from throughput.
        jax.block_until_ready(state)
        logging.info("First call (compilation included): %.1f s.", time.perf_counter() - first_call_start)
        last_log_step, last_log_time = step, time.perf_counter()
      is_last = step == config.total_steps
      if step % config.log_every == 0 or step % config.save_every == 0 or is_last:
        # Metrics reach the host only here, every step's at once. Checking them before
        # each save keeps a diverged state out of the checkpoints (non-finite parameters
        # show in the parameter norms and the losses).
        steps = {k: np.concatenate([m[k] for m in jax.device_get(pending_metrics)]) for k in metrics}
        pending_metrics = []
        bad = [k for k, v in steps.items() if not np.isfinite(v).all()]
        if bad:
          last = manager.latest_step()
          raise FloatingPointError(
              f"non-finite {', '.join(bad)} between steps {step - len(steps[bad[0]])} and {step}; "
              + (f"the last checkpoint is step {last}" if last is not None else "no checkpoint was written"))
        summary = {k: float(v.mean()) for k, v in steps.items()}
        if step > last_log_step:
          summary["steps_per_sec"] = (step - last_log_step) / (time.perf_counter() - last_log_time)
          summary["images_per_sec"] = summary["steps_per_sec"] * per_step
        writer.write_scalars(step, summary)
        last_log_step, last_log_time = step, time.perf_counter()
      if step % config.save_every == 0 or is_last:
        checkpoints.save(manager, step, state)
      if step % config.sample_every == 0 or is_last:
        save_samples(step)
      if evaluator is not None and (step % eval_every == 0 or is_last):
        last_log_time += run_evals(step)  # Evaluation time is not training throughput.
  finally:
    manager.wait_until_finished()
    manager.close()
    writer.close()
  return state
