"""Q's cluster heads fitted afresh on the discriminator's frozen features, after training:
SCAN's clustering step with a frozen backbone (Van Gansbeke et al. 2020), several heads from
different starts, the one with the lowest SCAN loss kept (by `evaluation.representation`).

Why after training, on frozen features: trained together with D, Q's heads all learn the
generator's code as well, and settled within 0.01 ACC of one another; fitted on D's frozen
features from different starts they found clusterings far apart, and the lowest SCAN loss
picked the best of them (README, "GAN-native methods").

Pure functions of arrays; `training.make_refit_fn` runs them on a train state and writes the
heads into Q's `code_refit_hidden_{j}` / `code_refit_{j}` layers (`models.heads`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from gan_jax import losses


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
  the mean prediction (`losses`' terms, as training and `select_code_head` use them)."""
  _, _, marginal = losses.mutual_information_loss(logits_BxK)
  return losses.neighbour_consistency_loss(logits_BxK, neighbour_logits_BxK) - entropy_weight * marginal


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
