"""SNGAN ResNet generator and discriminator for 32-pixel images (Miyato et al. 2018, Table 4).

  G: z(128) -> dense 4x4x256 -> 3 x ResBlock up (256) -> BN, ReLU, conv3x3 -> tanh
     ResBlock up: BN, ReLU, nearest 2x, conv3x3, BN, ReLU, conv3x3; shortcut nearest 2x, conv1x1
  D: OptimizedBlock down (128), ResBlock down (128), ResBlock (128) x 2, ReLU, global sum
     pool, dense 1; every convolution and dense layer spectrally normalised.
     ResBlock (down): ReLU, conv3x3, ReLU, conv3x3 [, avg-pool 2]; shortcut conv1x1 [, avg-pool]
     OptimizedBlock: conv3x3, ReLU, conv3x3, avg-pool; shortcut avg-pool, conv1x1

Spectral normalisation is Flax's `nn.SpectralNorm`: one power iteration per training
call, its `u` and `sigma` in the discriminator's "batch_stats" collection (so in the
train state, checkpointed and restored with it). Weights use Xavier-uniform initialisation
(gain 1, sqrt(2) in the residual paths' convolutions, as in the SNGAN code).
The backbone returns (pre_logits, features) like `dcgan.Backbone`: `conv1` ... `conv4` are
its blocks' outputs (the last after the final ReLU), `pre_logits` the sum-pooled features.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


SUPPORTED_IMAGE_SIZES = (32,)

_xavier = nn.initializers.xavier_uniform()
_xavier_res = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")  # gain sqrt(2)


def check_image_size(image_size: int) -> None:
  if image_size not in SUPPORTED_IMAGE_SIZES:
    raise ValueError(f"config.image_size={image_size} cannot be produced by the resnet model; allowed: 32")


def _upsample(x):
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")


def _avg_pool(x):
  return nn.avg_pool(x, (2, 2), (2, 2))


class GeneratorBlock(nn.Module):
  features: int
  train: bool
  dtype: Any = jnp.float32
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x):
    norm = lambda name: nn.BatchNorm(use_running_average=not self.train, momentum=self.bn_momentum, epsilon=1e-5,
                                     dtype=self.dtype, name=name)
    h = _upsample(nn.relu(norm("bn1")(x)))
    h = nn.Conv(self.features, (3, 3), padding="SAME", kernel_init=_xavier_res, dtype=self.dtype, name="conv1")(h)
    h = nn.relu(norm("bn2")(h))
    h = nn.Conv(self.features, (3, 3), padding="SAME", kernel_init=_xavier_res, dtype=self.dtype, name="conv2")(h)
    shortcut = nn.Conv(self.features, (1, 1), kernel_init=_xavier, dtype=self.dtype, name="shortcut")(_upsample(x))
    return h + shortcut


class Generator(nn.Module):
  """z `B x latent_dim` -> images `B x 32 x 32 x channels` in [-1, 1]."""
  image_size: int = 32
  channels: int = 3
  generator_features: int = 256
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z_BxZ, *, train: bool):
    check_image_size(self.image_size)
    width = self.generator_features
    x = nn.Dense(4 * 4 * width, kernel_init=_xavier, dtype=self.dtype, name="project")(z_BxZ)
    x = x.reshape(-1, 4, 4, width)
    for i in range(3):
      x = GeneratorBlock(width, train, self.dtype, self.bn_momentum, name=f"block{i + 1}")(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-5,
                             dtype=self.dtype, name="final_bn")(x))
    x = nn.Conv(self.channels, (3, 3), padding="SAME", kernel_init=_xavier, dtype=self.dtype, name="to_image")(x)
    return jnp.tanh(x.astype(jnp.float32))


class SNConv(nn.Module):
  """A spectrally normalised 'SAME' convolution."""
  features: int
  kernel_size: int
  kernel_init: Any = _xavier_res
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, update_stats: bool):
    conv = nn.Conv(self.features, (self.kernel_size, self.kernel_size), padding="SAME",
                   kernel_init=self.kernel_init, dtype=self.dtype, name="conv")
    return nn.SpectralNorm(conv, name="sn")(x, update_stats=update_stats)


class DiscriminatorBlock(nn.Module):
  features: int
  downsample: bool
  first: bool  # SNGAN's "optimized" first block: no ReLU before its first convolution.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, update_stats: bool):
    h = x if self.first else nn.relu(x)
    h = SNConv(self.features, 3, dtype=self.dtype, name="conv1")(h, update_stats)
    h = SNConv(self.features, 3, dtype=self.dtype, name="conv2")(nn.relu(h), update_stats)
    if self.downsample:
      h = _avg_pool(h)
    shortcut = x
    if self.first:
      shortcut = SNConv(self.features, 1, _xavier, self.dtype, name="shortcut")(_avg_pool(x), update_stats)
    elif self.downsample or x.shape[-1] != self.features:
      shortcut = SNConv(self.features, 1, _xavier, self.dtype, name="shortcut")(x, update_stats)
      shortcut = _avg_pool(shortcut) if self.downsample else shortcut
    return h + shortcut


class Backbone(nn.Module):
  """D's body: images `B x 32 x 32 x C` -> (pre_logits `B x F`, the sum-pooled features;
  {`conv1` ... `conv4`: the blocks' outputs, the last after SNGAN's final ReLU}). `train=True`
  runs a power iteration of every spectral norm (call with mutable=["batch_stats"]); the
  real/fake layer and the heads (`models.Discriminator`) are spectrally normalised too."""
  image_size: int = 32
  discriminator_features: int = 128
  dtype: Any = jnp.float32

  @staticmethod
  def head_dense(features: int, name: str, dtype):
    layer = nn.SpectralNorm(nn.Dense(features, kernel_init=_xavier, dtype=dtype, name=name), name=f"{name}_sn")
    return lambda x, train: layer(x, update_stats=train)

  head_activation = staticmethod(lambda x: nn.leaky_relu(x, 0.1))

  @nn.compact
  def __call__(self, x_BxSxSxC, *, train: bool = False):
    check_image_size(self.image_size)
    features = {}
    x = x_BxSxSxC.astype(self.dtype)
    for i, downsample in enumerate((True, True, False, False)):
      x = DiscriminatorBlock(self.discriminator_features, downsample, first=i == 0, dtype=self.dtype,
                             name=f"block{i + 1}")(x, train)
      features[f"conv{i + 1}"] = x
    x = nn.relu(x)
    features["conv4"] = x  # The last block's output after SNGAN's final ReLU, as D's head reads it.
    return x.sum(axis=(1, 2)), features
