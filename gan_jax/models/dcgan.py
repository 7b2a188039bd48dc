"""DCGAN generator and discriminator for 28, 32 and 64 pixel images.

With the defaults at 32 pixels these are the "standard CNN" of the SNGAN paper
(Miyato et al. 2018, Table 3):
  G: z(128) -> dense 4x4x512 -> [deconv4x4 s2, BN, ReLU] x 256/128/64 -> conv3x3 -> tanh
  D: conv3x3 64, conv4x4 s2 64, conv3x3 128, conv4x4 s2 128, conv3x3 256, conv4x4 s2 256,
     conv3x3 512, LeakyReLU(0.1) after each, dense 1.
At 28 pixels the generator starts from 7x7 (two upsamplings); at 64 it has four.
`discriminator_stride1_convs=False` drops D's 3x3 stride-1 convolutions, leaving a DCGAN-style
discriminator of 4x4 stride-2 convolutions (Radford et al. 2016, but like the SNGAN
standard CNN without BatchNorm and with LeakyReLU 0.1).

Weights use the DCGAN initialisation N(0, 0.02) (BatchNorm scale N(1, 0.02)).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import conv

# Generator start resolution and number of 2x upsamplings for each image size.
_GENERATOR_PLAN = {28: (7, 2), 32: (4, 3), 64: (4, 4)}
SUPPORTED_IMAGE_SIZES = tuple(_GENERATOR_PLAN)
_DISCRIMINATOR_STAGES = {28: 3, 32: 3, 64: 4}

dcgan_init = nn.initializers.normal(stddev=0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def check_image_size(image_size: int) -> None:
  if image_size not in _GENERATOR_PLAN:
    raise ValueError(f"config.image_size={image_size} cannot be produced by the dcgan model; "
                     f"allowed: {', '.join(map(str, SUPPORTED_IMAGE_SIZES))}")


class Upsample2x(nn.Module):
  """A 4x4 stride-2 'SAME' transposed convolution, computed as `conv.upsample2x`.

  Same parameters (`kernel` 4x4xIxO, `bias` O) and the same function as
  `nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')`, but forward and
  gradient are plain stride-1 convolutions: on XLA:CPU the gradient of the strided
  transposed convolution is an order of magnitude slower than its forward pass.
  """
  features: int
  use_bias: bool = True
  backward: str = "phase"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxI):
    kernel = self.param("kernel", dcgan_init, (4, 4, x_BxHxWxI.shape[-1], self.features))
    y = conv.upsample2x(x_BxHxWxI.astype(self.dtype), kernel.astype(self.dtype), self.backward)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y


class Conv(nn.Module):
  """`nn.Conv(features, (k, k), (s, s), padding='SAME')` (same parameters and function)
  through `conv.conv2d`, whose gradient of 4x4 stride-2 kernels is faster on CPU."""
  features: int
  kernel_size: int
  stride: int = 1
  backward: str = "phase"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxI):
    kernel = self.param("kernel", dcgan_init, (self.kernel_size, self.kernel_size, x_BxHxWxI.shape[-1],
                                               self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    y = conv.conv2d(x_BxHxWxI.astype(self.dtype), kernel.astype(self.dtype), self.stride, self.backward)
    return y + bias.astype(self.dtype)


class Generator(nn.Module):
  """z `B x latent_dim` -> images `B x S x S x channels` in [-1, 1]."""
  image_size: int = 32
  channels: int = 3
  generator_features: int = 64
  # Running statistics keep `momentum` of the old value per training-mode call; 0 makes
  # them the statistics of the current batch (used to set the EMA generator's).
  bn_momentum: float = 0.9
  conv_backward: str = "phase"  # How upsampling gradients are computed: `conv.BACKWARDS`.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z_BxZ, *, train: bool):
    check_image_size(self.image_size)
    start, num_up = _GENERATOR_PLAN[self.image_size]
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-5,
                                     scale_init=_bn_scale_init, dtype=self.dtype, name=name)
    width = self.generator_features * 2**num_up
    x = nn.Dense(start * start * width, kernel_init=dcgan_init, dtype=self.dtype, name="project")(z_BxZ)
    x = x.reshape(-1, start, start, width)
    x = nn.relu(norm("project_bn")(x))
    for i in range(num_up):
      width //= 2
      x = Upsample2x(width, use_bias=False, backward=self.conv_backward, dtype=self.dtype, name=f"up{i + 1}")(x)
      x = nn.relu(norm(f"up{i + 1}_bn")(x))
    x = nn.Conv(self.channels, (3, 3), padding="SAME", kernel_init=dcgan_init, dtype=self.dtype,
                name="to_image")(x)
    return jnp.tanh(x.astype(jnp.float32))


class Backbone(nn.Module):
  """D's body: images `B x S x S x C` -> (pre_logits `B x F`, {`conv1` ... `convN`: each
  convolution's activation, `B x h x w x c`}); `pre_logits` is the last one flattened. The
  real/fake layer and the heads are `models.Discriminator`'s."""
  image_size: int = 32
  discriminator_features: int = 64
  discriminator_stride1_convs: bool = True
  conv_backward: str = "phase"  # How 4x4 stride-2 gradients are computed: `conv.BACKWARDS`.
  dtype: Any = jnp.float32

  @staticmethod
  def head_dense(features: int, name: str, dtype):
    layer = nn.Dense(features, kernel_init=dcgan_init, dtype=dtype, name=name)
    return lambda x, train: layer(x)

  head_activation = staticmethod(lambda x: nn.leaky_relu(x, 0.1))

  @nn.compact
  def __call__(self, x_BxSxSxC, *, train: bool = False):
    del train  # No batch-dependent layers.
    check_image_size(self.image_size)
    features = {}
    x = x_BxSxSxC.astype(self.dtype)
    layers = []
    for stage in range(_DISCRIMINATOR_STAGES[self.image_size]):
      width = self.discriminator_features * 2**stage
      if self.discriminator_stride1_convs:
        layers.append((width, 3, 1))
      layers.append((width, 4, 2))
    if self.discriminator_stride1_convs:
      layers.append((2 * width, 3, 1))
    for n, (f, k, s) in enumerate(layers, start=1):
      x = self.head_activation(Conv(f, k, s, backward=self.conv_backward, dtype=self.dtype, name=f"conv{n}")(x))
      features[f"conv{n}"] = x
    return x.reshape(x.shape[0], -1), features
