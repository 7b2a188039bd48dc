"""Q's cluster heads fitted afresh on the discriminator's frozen features, after training:
SCAN's clustering step with a frozen backbone (Van Gansbeke et al. 2020), several heads from
different starts, the one with the lowest SCAN loss kept (by `evaluation.representation`).

Why after training, on frozen features: trained together with D, Q's heads all learn the
generator's code as well, and settled within 0.01 ACC of one another; fitted on D's frozen
features from different starts they found clusterings far apart, and the lowest SCAN loss
picked the best of them (docs/research_log.md).

`fit_heads` and its parts are pure functions of arrays; `make_refit_fn` runs them on a train
state and writes the heads into Q's `code_refit_hidden_{j}` / `code_refit_{j}` layers
(`terms.infogan.refit_heads`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gan_jax import neighbours
from gan_jax import parallel
from gan_jax import population
from gan_jax import terms
from gan_jax.terms import infogan
from gan_jax.state import GAN, stream
from gan_jax.terms.core import mutual_information_loss
from gan_jax.terms.infogan import neighbour_consistency_loss

# SCAN's weight of the entropy of the mean prediction, where the run has no neighbour term.
SCAN_ENTROPY_WEIGHT = 5.0


def pca_basis(features_NxF: jax.Array, dim: int) -> tuple[jax.Array, jax.Array]:
  """(mean `F`, orthonormal basis `F x d`) of the top `d = min(dim, N, F)` principal
  directions of `features`."""
  mean = features_NxF.mean(0)
  _, _, vt = jnp.linalg.svd(features_NxF - mean, full_matrices=False)
  return mean, vt[:min(dim, *features_NxF.shape)].T


def init_heads(key: jax.Array, num_heads: int, in_dim: int, hidden: int, categories: int) -> dict[str, jax.Array]:
  """`num_heads` two-layer heads (leading axis), LeCun-normal kernels, zero biases."""
  k1, k2 = jax.random.split(key)
  init = jax.nn.initializers.lecun_normal(batch_axis=0)  # Each head its own fan-in.
  return {"w1": init(k1, (num_heads, in_dim, hidden)), "b1": jnp.zeros((num_heads, hidden)),
          "w2": init(k2, (num_heads, hidden, categories)), "b2": jnp.zeros((num_heads, categories))}


def apply_head(head: dict[str, jax.Array], x_BxD: jax.Array, act: Callable[[jax.Array], jax.Array]) -> jax.Array:
  """Logits `B x K` of one head (no leading axis)."""
  return act(x_BxD @ head["w1"] + head["b1"]) @ head["w2"] + head["b2"]


def scan_loss(logits_BxK: jax.Array, neighbour_logits_BxK: jax.Array, entropy_weight: float) -> jax.Array:
  """SCAN's loss: disagreement with the neighbours less `entropy_weight` x the entropy of
  the mean prediction (the terms training minimises, `terms.infogan`, as `select_code_head` uses them)."""
  _, _, marginal = mutual_information_loss(logits_BxK)
  return neighbour_consistency_loss(logits_BxK, neighbour_logits_BxK) - entropy_weight * marginal


def fit_heads(key: jax.Array, features_NxF: jax.Array, neighbours_Nxk: jax.Array, *, num_heads: int, hidden: int,
              categories: int, steps: int, batch_size: int, learning_rate: float, entropy_weight: float, dim: int,
              act: Callable[[jax.Array], jax.Array]) -> tuple[dict[str, Any], jax.Array]:
  """Fits `num_heads` cluster heads by SCAN's loss on frozen features; jit-compatible.

  Each step draws `batch_size` images and, for each, one of its `k` mined neighbours at
  random, as training's neighbour term does. The heads read the features' top `dim`
  principal components, which makes each step about F / dim times cheaper than reading
  all F; the projection is folded into the first layer afterwards, so the returned heads
  read the features themselves.

  Returns ({"hidden": {"kernel" H x F x hidden, "bias" H x hidden}, "output": {"kernel"
  H x hidden x K, "bias" H x K}} in `nn.Dense`'s layout, each head's SCAN loss `H` on all
  N images against all their neighbours).
  """
  features_NxF = features_NxF.astype(jnp.float32)
  mean, basis = pca_basis(features_NxF, dim)
  z_NxD = (features_NxF - mean) @ basis
  n, k = neighbours_Nxk.shape
  init_key, step_key = jax.random.split(key)
  heads = init_heads(init_key, num_heads, z_NxD.shape[1], hidden, categories)
  tx = optax.adam(learning_rate)
  loss_fn = lambda head, a, b: scan_loss(apply_head(head, a, act), apply_head(head, b, act), entropy_weight)

  def step(carry, key):
    heads, opt_state = carry
    image_key, neighbour_key = jax.random.split(key)
    i = jax.random.choice(image_key, n, (min(batch_size, n),), replace=False)
    j = neighbours_Nxk[i, jax.random.randint(neighbour_key, i.shape, 0, k)]
    grads = jax.vmap(jax.grad(loss_fn), (0, None, None))(heads, z_NxD[i], z_NxD[j])
    updates, opt_state = jax.vmap(tx.update)(grads, opt_state, heads)
    return (optax.apply_updates(heads, updates), opt_state), None
  (heads, _), _ = jax.lax.scan(step, (heads, jax.vmap(tx.init)(heads)), jax.random.split(step_key, steps))

  def full_loss(head):
    logits = apply_head(head, z_NxD, act)
    return jax.vmap(lambda j: scan_loss(logits, logits[j], entropy_weight), in_axes=1)(neighbours_Nxk).mean()
  head_losses = jax.vmap(full_loss)(heads)
  # act((x - mean) @ basis @ w1 + b1) = act(x @ kernel + bias).
  kernel = jnp.einsum("fd,hdc->hfc", basis, heads["w1"])
  dense = {"hidden": {"kernel": kernel, "bias": heads["b1"] - jnp.einsum("f,hfc->hc", mean, kernel)},
           "output": {"kernel": heads["w2"], "bias": heads["b2"]}}
  return dense, head_losses


def refit_inputs(features: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """(what Q's heads read, the embedding neighbours are mined by), float32: what refit heads
  are fitted on (`make_refit_fn`)."""
  return features["code_input"].astype(jnp.float32), neighbours.pairing_embedding(features).astype(jnp.float32)


def refit_head_params(dense: dict[str, Any], num_heads: int) -> dict[str, Any]:
  """Q's `code_refit_hidden_{j}` / `code_refit_{j}` params from `fit_heads`' heads."""
  return {name: jax.tree.map(lambda x, j=j: x[j], dense[layer]) for j in range(num_heads)
          for layer, name in (("hidden", f"code_refit_hidden_{j}"), ("output", f"code_refit_{j}"))}


def make_refit_fn(gan: GAN, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
  """`refit_fn(state, images_u8) -> (state, losses)`, jit-compiled: Q's `infogan.refit.heads`
  heads fitted afresh (`fit_heads`) on D's frozen features of the uint8 training images, with
  neighbours mined by D's embedding of the same images, and written into D's params (and,
  with `d_ema_decay`, into its EMA's, fitted on the EMA's own features); `code_refit_step`
  set to the state's step. `losses`: each head's SCAN loss on the training images, `R` (or
  `2 x R`: online D, then its EMA). The state and the losses carry the population's member axis."""
  refit = config.infogan.refit
  mining = terms.block(config, "infogan.neighbours")
  fit = functools.partial(fit_heads, num_heads=refit.heads, hidden=infogan.Q_HIDDEN,
                          categories=config.infogan.categories, steps=refit.steps, batch_size=refit.batch_size,
                          learning_rate=refit.learning_rate, dim=refit.dim, act=infogan.REFIT_ACTIVATION,
                          entropy_weight=mining.entropy_weight if mining is not None else SCAN_ENTROPY_WEIGHT)

  def refit_params(params, variables, images_u8, key):
    inputs, embeddings = neighbours.map_discriminator(gan, {**variables, "params": params}, images_u8, refit_inputs)
    dense, head_losses = fit(key, inputs, neighbours.nearest_neighbours(embeddings, refit.k))
    fitted = refit_head_params(dense, refit.heads)
    params = {**params, **{name: jax.tree.map(lambda new, old: new.astype(old.dtype), fitted[name], params[name])
                           for name in fitted}}
    return params, head_losses

  def refit_fn(state, images_u8):
    key = stream(jax.random.fold_in(state["rng"], state["step"]), "refit")  # Apart from the step's keys.
    state = dict(state)
    params, head_losses = refit_params(state["discriminator"]["params"], state["discriminator"], images_u8, key)
    state["discriminator"] = {**state["discriminator"], "params": params}
    if "d_ema_params" in state:
      state["d_ema_params"], ema_losses = refit_params(state["d_ema_params"], state["discriminator"], images_u8, key)
      head_losses = jnp.concatenate([head_losses, ema_losses])
    state["code_refit_step"] = state["step"]
    return state, head_losses
  # Each member's heads, on its own D.
  refit_members = lambda state, images_u8: population.map_members(lambda s: refit_fn(s, images_u8), state)
  return jax.jit(refit_members, donate_argnums=0, out_shardings=(parallel.by_member(mesh), parallel.by_member(mesh)))
