"""The discriminator every model shares: its backbone, the real/fake layer and the heads of the
enabled terms (`terms.heads`), each declared in its term family's module."""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


class Discriminator(nn.Module):
  """images `B x S x S x C` -> (logits `B`, features {name: activation}).

  `features` holds the backbone's layers (`conv1` ...), `pre_logits` (what the real/fake
  layer and the heads read) and the heads' outputs (`projection`, `rotation_logits`,
  `code_logits`, `class_logits`, ...). `train=True` runs the backbone's own state updates
  (spectral norms' power iterations; call with mutable=["batch_stats"]).

  backbone: a model's `Backbone` (`gan_jax.models`); its layers keep their names here.
  heads: (build, options) pairs; `build(x_BxF, logits_BxK, features, *, dense, act, dtype,
    **options) -> logits_BxK` adds its outputs to `features`.
  outputs: the real/fake layer's width: 1, or K for the K+1 classifier, whose head makes the
    real/fake logit of the K class logits.
  """
  backbone: nn.Module
  heads: tuple[tuple[Callable[..., Any], tuple[tuple[str, Any], ...]], ...] = ()
  outputs: int = 1

  def setup(self):
    nn.share_scope(self, self.backbone)  # The backbone's params keep their names, and so their initialisation.

  @nn.compact
  def __call__(self, x_BxSxSxC, *, train: bool = False):
    x_BxF, features = self.backbone(x_BxSxSxC, train=train)
    features["pre_logits"] = x_BxF
    dtype = self.backbone.dtype
    layers = {}  # By name: a head may call a layer again (ContraD's reads "logits" on the stopped features).

    def dense(n, name):
      if name not in layers:
        layers[name] = functools.partial(self.backbone.head_dense(n, name, dtype), train=train)
      return layers[name]

    logits_BxK = dense(self.outputs, "logits")(x_BxF).astype(jnp.float32)
    for build, options in self.heads:
      logits_BxK = build(x_BxF, logits_BxK, features, dense=dense, act=self.backbone.head_activation, dtype=dtype,
                         **dict(options))
    return logits_BxK[:, 0], features


def feature_shapes(discriminator: nn.Module, image_shape: tuple[int, ...]) -> dict[str, jax.ShapeDtypeStruct]:
  """{feature name: shape} of `discriminator` on one image of `image_shape` (H x W x C),
  traced, not run: what a discriminator outputs, for code that must not read its config."""
  x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  return jax.eval_shape(lambda x: discriminator.apply(discriminator.init(jax.random.PRNGKey(0), x), x,
                                                      train=False), x)[1]
