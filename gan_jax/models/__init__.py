"""GAN architectures. Each module here is a model, found by `config.model.name`, and defines:

  Generator  linen module: z `B x input_dim` -> images `B x S x S x C` in [-1, 1]
             (`__call__(z, *, train)`); with BatchNorm, a `bn_momentum` field (sampling sets
             it to 0 to compute the EMA generator's own statistics).
  Backbone   linen module: images -> (pre_logits `B x F`, {layer name: activation})
             (`__call__(x, *, train)`), with `head_dense(features, name, dtype)` -> one layer
             of the kind of its real/fake layer and heads (called with `train=`, maybe more
             than once), and `head_activation`.

Each takes, by name, the fields of `config.model` it declares (`build`), beside `image_size`
(and G's `channels`); the discriminator is the backbone with the real/fake layer and the heads
of the enabled terms (`discriminator.Discriminator`). A new architecture is a new file here.
"""

import dataclasses
import importlib
import pkgutil

import jax.numpy as jnp

from gan_jax.models.discriminator import Discriminator, feature_shapes  # noqa: F401 (the shared part)

# Modules here that are parts shared by the models, not models.
_PARTS = ("discriminator",)


def available() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _PARTS)


def get_model_module(name: str):
  """The module `gan_jax.models.<name>`; a clear error listing the choices otherwise."""
  if name not in available():
    raise ValueError(f"config.model.name={name!r} is not a model; allowed: {', '.join(available())}")
  return importlib.import_module(f"{__name__}.{name}")


def build(cls, model_config, **given):
  """`cls(**given)` with the fields of `model_config` (`config.model`) that `cls` declares;
  `dtype` by name ("bfloat16")."""
  declared = {f.name for f in dataclasses.fields(cls)} - {"name", "parent"}
  options = {k: jnp.dtype(v) if k == "dtype" else v for k, v in model_config.items() if k in declared}
  return cls(**options, **given)
