"""The GAN update, `train_step`, and `make_train_fn`, which jit-compiles it over a device mesh.

`train_step(state, batch, weights)` is the whole update: `n_dis` discriminator updates, each
on its own real batch, then one generator update and the EMAs. What D and G minimise is the
weighted sum of the loss terms the config switches on (`terms`): the step makes the batches
those terms read, judges them in one pass of D, and adds each term times its weight.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax import augment
from gan_jax import data
from gan_jax import neighbours as neighbours_lib
from gan_jax import parallel
from gan_jax import population
from gan_jax import terms
from gan_jax.sampling import sample_latents
from gan_jax.state import GAN, seed_keys, stream
from gan_jax.terms.core import Judged
from gan_jax.terms.rotation import rotate90

# The transformations of the real images' views (and of the mined neighbours), which the
# contrastive, neighbour and consistency terms compare; the weak view is translated only.
VIEWS = ("translation", "cutout")
# Each batch D judges: what it is made from and how it is augmented (None: `config.augment`);
# "rotated" is the source turned by random quarter turns instead.
MADE_FROM = {"real": ("real", None), "fake": ("fake", None), "labelled": ("labelled", None),
             "view0": ("real", VIEWS), "view1": ("real", VIEWS), "neighbour": ("neighbour", VIEWS),
             "weak": ("real", ("translation",))}


class StepSettings(NamedTuple):
  """What the compiled step is built for (static); the terms' weights are its arguments."""
  terms: terms.Enabled
  n_dis: int = 1
  augment: tuple[str, ...] = ()  # DiffAugment on every image D judges as real or fake.
  ema_decay: float = 0.999       # The generator's EMA; early steps use min(decay, (1+t)/(10+t)).
  d_ema_decay: float = 0.999     # The discriminator's, where the state keeps one.
  # A D or G update whose loss or gradients are not all finite leaves that network as it was.
  skip_nonfinite: bool = False
  debug_nan_step: int = -1       # Tests only: this step's losses are made NaN.
  # How a batch is split over the devices; the latents are constrained to it, else XLA may
  # run the generator whole on every device.
  batch_sharding: jax.sharding.Sharding | None = None


def step_settings(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None) -> StepSettings:
  return StepSettings(terms.enabled(config), config.n_dis, augment.parse_policy(config.augment), config.ema_decay,
                      config.d_ema_decay, config.skip_nonfinite_updates, config.get("debug_nan_step", -1),
                      parallel.batch_sharded(mesh) if mesh is not None else None)


def train_step(state: dict[str, Any], batch: dict[str, jax.Array], weights: dict[str, jax.Array], *, gan: GAN,
               settings: StepSettings) -> tuple[dict[str, Any], dict[str, jax.Array]]:
  """One GAN update: a discriminator update per real batch, then a generator update.

  Args:
    state: the train state (`state.py`).
    batch: "real", `n_dis x B x H x W x C` images in [-1, 1], one batch per D update; and
      where the enabled terms read them, "labelled" and "labels" (`n_dis x L ...`, the K+1
      GAN's labelled batches) and "neighbour" (`n_dis x B ...`, a mined neighbour of each
      real image). Each generated batch has the real batch's size B.
    weights: {term name: weight} of the enabled terms (`terms.weights`).
  Returns:
    The new state and scalar metrics: d_loss, g_loss, d_grad_norm, g_grad_norm,
    d_param_norm, g_param_norm, each term's loss under its name (`d_adversarial`, ...) and its
    other metrics (`d_real` and `d_fake`, the mean logits, `d_accuracy`, ...),
    and with `skip_nonfinite` d_skipped (D updates skipped this step) and g_skipped.
  """
  step = state["step"]
  d_key, g_key = jax.random.split(jax.random.fold_in(state["rng"], step))
  d_stats = {k: v for k, v in state["discriminator"].items() if k != "params"}
  d_update = functools.partial(_discriminator_update, gan=gan, settings=settings, weights=weights, step=step,
                               g_vars=state["generator"])
  (d_params, d_stats, d_opt_state), d_metrics = repeat(
      d_update, (state["discriminator"]["params"], d_stats, state["d_opt_state"]),
      (batch, jax.random.split(d_key, settings.n_dis)), settings.n_dis)
  g_params, g_stats, g_opt_state, g_metrics = _generator_update(
      state, d_params, d_stats, batch["real"][-1], g_key, gan=gan, settings=settings, weights=weights)
  new_state = {**state, "step": step + 1, "generator": {**state["generator"], **g_stats, "params": g_params},
               "discriminator": {**state["discriminator"], **d_stats, "params": d_params},
               "g_opt_state": g_opt_state, "d_opt_state": d_opt_state}
  for name, params, decay in (("g_ema_params", g_params, settings.ema_decay),
                              ("d_ema_params", d_params, settings.d_ema_decay)):
    if name in state:  # After the skip checks: a skipped update left its params as they were.
      warmed_up = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
      new_state[name] = optax.incremental_update(params, state[name], 1.0 - warmed_up)
  if settings.skip_nonfinite:  # A skipped G update leaves its EMA as it was too.
    new_state["g_ema_params"] = _keep_if(g_metrics["g_skipped"] == 0, new_state["g_ema_params"], state["g_ema_params"])
  metrics = {k: v.sum() if k == "d_skipped" else v.mean() for k, v in d_metrics.items()}
  metrics.update(g_metrics, g_param_norm=optax.tree.norm(g_params), d_param_norm=optax.tree.norm(d_params))
  return new_state, metrics


def _discriminator_update(carry, inputs, *, gan: GAN, settings: StepSettings, weights, step, g_vars):
  """One D update on one real batch: the enabled D terms, weighted and summed, and an Optax step."""
  d_params, d_stats, d_opt_state = carry
  batch, key = inputs
  z_key, gp_key = jax.random.split(key)
  fake, _, (categories, continuous) = _generate(gan, g_vars, g_vars["params"], z_key, batch["real"].shape[0],
                                                settings)
  fake = jax.lax.stop_gradient(fake)
  images, parts, made = _judged_images(terms.inputs(settings.terms.discriminator), key,
                                       {**batch, "fake": fake}, settings.augment, rotate=batch["real"])
  made.update(batch, fake=fake, categories=categories, continuous=continuous, key=gp_key)

  def loss_fn(params):
    logits, features, new_stats = _discriminate(gan, params, d_stats, images, update=True)
    judged = Judged(images, logits, features, parts, made, step, lambda x: _discriminate(gan, params, d_stats, x)[0])
    loss, metrics = _weighted_sum(settings.terms.discriminator, judged, weights, "d")
    return _poison(loss, step, settings), (metrics, new_stats)

  (loss, (metrics, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
  updates, new_opt_state = gan.d_tx.update(grads, d_opt_state, d_params)
  new = (optax.apply_updates(d_params, updates), new_stats, new_opt_state)
  metrics = {"d_loss": loss, "d_grad_norm": optax.tree.norm(grads), **metrics}
  if settings.skip_nonfinite:
    ok = _all_finite((loss, grads))
    new = _keep_if(ok, new, carry)
    metrics["d_skipped"] = 1 - ok.astype(jnp.int32)
  return new, metrics


def _generator_update(state, d_params, d_stats, last_real, key, *, gan: GAN, settings: StepSettings, weights):
  """The G update against the updated D: (params, new non-parameter variables, opt_state, metrics)."""
  g_vars, step = state["generator"], state["step"]

  def loss_fn(g_params):
    fake, g_stats, (categories, continuous) = _generate(gan, g_vars, g_params, key, last_real.shape[0], settings)
    images, parts, made = _judged_images(terms.inputs(settings.terms.generator), key,
                                         {"real": last_real, "fake": fake}, settings.augment, rotate=fake)
    logits, features, _ = _discriminate(gan, d_params, d_stats, images)
    made.update(categories=categories, continuous=continuous)
    judged = Judged(images, logits, features, parts, made, step, None)
    loss, metrics = _weighted_sum(settings.terms.generator, judged, weights, "g")
    return _poison(loss, step, settings), (g_stats, metrics)

  (loss, (g_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g_vars["params"])
  updates, opt_state = gan.g_tx.update(grads, state["g_opt_state"], g_vars["params"])
  new = (optax.apply_updates(g_vars["params"], updates), g_stats, opt_state)
  metrics.update(g_loss=loss, g_grad_norm=optax.tree.norm(grads))
  if settings.skip_nonfinite:
    ok = _all_finite((loss, grads))
    new = _keep_if(ok, new, (g_vars["params"], {k: g_vars[k] for k in g_stats}, state["g_opt_state"]))
    metrics["g_skipped"] = 1 - ok.astype(jnp.int32)
  return *new, metrics


def _weighted_sum(enabled, judged: Judged, weights, player: str):
  """sum of weight x loss over the enabled terms, and their metrics: each term's loss under
  its name ("d_contrastive"), its other metrics as `<player>_<metric>`."""
  total, metrics = 0.0, {}
  for name, loss_fn, _ in enabled:
    loss, term_metrics = loss_fn(judged)
    total += weights[name] * loss
    metrics.update({f"{player}_{k}": v for k, v in term_metrics.items()}, **{name: loss})
  return total, metrics


def _judged_images(names, key, sources, policy, rotate):
  """The batches `names`, each made from `sources` (`MADE_FROM`) with the stream of `key`
  named after it, stacked as D judges them in one pass: (images, {name: slice}, {"turns": ...})."""
  made, batches = {}, []
  for name in names:
    name_key = stream(key, name)
    if name == "rotated":
      made["turns"] = jax.random.randint(name_key, (rotate.shape[0],), 0, 4)
      batches.append(rotate90(rotate, made["turns"]))
    else:
      source, name_policy = MADE_FROM[name]
      batches.append(augment.diff_augment(name_key, sources[source], policy if name_policy is None else name_policy))
  sizes = np.cumsum([0] + [x.shape[0] for x in batches])
  return jnp.concatenate(batches), {name: slice(a, b) for name, a, b in zip(names, sizes[:-1], sizes[1:])}, made


def _generate(gan: GAN, g_vars, g_params, key, batch_size: int, settings: StepSettings):
  """(images, G's new non-parameter variables ({"batch_stats": ...}; {} without BatchNorm),
  (categories, continuous)) of G on `batch_size` latents from `key`."""
  z, categories, continuous = sample_latents(key, batch_size, gan)
  if settings.batch_sharding is not None:
    z = jax.lax.with_sharding_constraint(z, settings.batch_sharding)
  images, updates = gan.generator.apply({**g_vars, "params": g_params}, z, train=True, mutable=["batch_stats"])
  return images, dict(updates), (categories, continuous)


def _discriminate(gan: GAN, d_params, stats, x, update: bool = False):
  """(logits, features, new stats) of D on images `x`; `stats` are D's non-parameter
  variables (the power-iteration vectors of spectral norms; {} without them), advanced
  once per discriminator update."""
  if not stats:
    return *gan.discriminator.apply({"params": d_params}, x), stats
  if not update:
    return *gan.discriminator.apply({"params": d_params, **stats}, x, train=False), stats
  out, new_stats = gan.discriminator.apply({"params": d_params, **stats}, x, train=True, mutable=list(stats))
  return *out, new_stats


def _poison(loss, step, settings: StepSettings):
  """For tests: NaN at `debug_nan_step`, as a product, so that the gradients turn NaN too."""
  if settings.debug_nan_step < 0:
    return loss
  return loss * jnp.where(step == settings.debug_nan_step, jnp.nan, 1.0)


def _all_finite(tree) -> jax.Array:
  """Whether every element of every leaf of `tree` is finite (a bool scalar)."""
  return jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]).all()


def _keep_if(ok: jax.Array, new, old):
  """`new` where `ok`, else `old`, leaf by leaf: an update that is skipped when not `ok`."""
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


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


def make_train_fn(gan: GAN, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_examples: int):
  """`train_fn(state, weights, images_u8[, labelled_u8, labels]) -> (state, metrics)`:
  `config.steps_per_call` steps in one call, jit-compiled; `weights` are the terms' weights
  (`population.weights(config)`), arguments of the program rather than constants in it.

  `images_u8` is the whole training set (uint8 `N x H x W x C`) resident on the devices,
  replicated or split along the data axis; each step gathers its own batches from it by
  `data.batch_indices`, so the loop copies nothing between host and device. With
  `config.kplus1`, `labelled_u8` and `labels` are the labelled subset, batched the same way;
  no other labels are passed. The state, weights, labelled subsets and metrics carry the
  population's member axis (`population.members`; after the step axis for metrics: one row
  per step), of size 1 for a single run, and `population.map_members` runs the step over it.
  """
  settings = step_settings(config, mesh)
  keys = population.stack([seed_keys(m.seed) for m in population.members(config)])
  shard = lambda x: jax.lax.with_sharding_constraint(x, parallel.batch_sharded(mesh, batch_axis=1))
  mining = terms.block(config, "infogan.neighbours")

  def member_step(state, weights, keys, images_u8, labelled_u8, labels):
    idx = data.batch_indices(keys["data"], state["step"], num_examples=num_examples,
                             batch_size=config.n_dis * config.batch_size)
    batch = {"real": shard(data.to_model_range(images_u8[idx]).reshape(config.n_dis, config.batch_size,
                                                                      *images_u8.shape[1:]))}
    if mining is not None:  # Which of its k neighbours each image meets: a stream of the data key.
      neighbour_idx = neighbours_lib.draw(state, idx, stream(keys["data"], "neighbour"))
      batch["neighbour"] = shard(data.to_model_range(images_u8[neighbour_idx]).reshape(batch["real"].shape))
    if labelled_u8 is not None:  # One labelled batch per discriminator update.
      idx = jnp.stack([data.batch_indices(keys["labelled"], state["step"] * config.n_dis + i,
                                          num_examples=labelled_u8.shape[0], batch_size=config.batch_size)
                       for i in range(config.n_dis)])
      batch.update(labelled=shard(data.to_model_range(labelled_u8[idx])), labels=labels[idx])
    return train_step(state, batch, weights, gan=gan, settings=settings)

  def one_step(state, weights, images_u8, labelled_u8, labels):
    if mining is not None:
      state = neighbours_lib.refresh(gan, state, images_u8, mining.refresh)
    return population.map_members(lambda s, w, k, x, y: member_step(s, w, k, images_u8, x, y),
                                  state, weights, keys, labelled_u8, labels)

  def train_fn(state, weights, images_u8, labelled_u8=None, labels=None):
    return repeat(lambda s, _: one_step(s, weights, images_u8, labelled_u8, labels), state, None,
                  config.steps_per_call)

  return jax.jit(train_fn, donate_argnums=0, out_shardings=(parallel.by_member(mesh), parallel.by_member(mesh, 1)))
