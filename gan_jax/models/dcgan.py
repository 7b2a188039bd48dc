"""DCGAN generator and discriminator for 28, 32 and 64 pixel images.

With the defaults at 32 pixels these are the "standard CNN" of the SNGAN paper
(Miyato et al. 2018, Table 3):
  G: z(128) -> dense 4x4x512 -> [deconv4x4 s2, BN, ReLU] x 256/128/64 -> conv3x3 -> tanh
  D: conv3x3 64, conv4x4 s2 64, conv3x3 128, conv4x4 s2 128, conv3x3 256, conv4x4 s2 256,
     conv3x3 512, LeakyReLU(0.1) after each, dense 1.
At 28 pixels the generator starts from 7x7 (two upsamplings); at 64 it has four.
`stride1_convs=False` drops D's 3x3 stride-1 convolutions, leaving a DCGAN-style
discriminator of 4x4 stride-2 convolutions (Radford et al. 2016, but like the SNGAN
standard CNN without BatchNorm and with LeakyReLU 0.1).

Weights use the DCGAN initialisation N(0, 0.02) (BatchNorm scale N(1, 0.02)).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

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


def depth_to_space(x_BxHxWx4C: jax.Array) -> jax.Array:
  """Rearranges channels `(2, 2, C)` into 2x2 pixel blocks: `B x H x W x 4C -> B x 2H x 2W x C`."""
  b, h, w, c4 = x_BxHxWx4C.shape
  c = c4 // 4
  x = x_BxHxWx4C.reshape(b, h, w, 2, 2, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c)


def subpixel_kernel(kernel_4x4xIxO: jax.Array) -> jax.Array:
  """The 3x3 kernel `3 x 3 x I x 4O` whose stride-1 conv + `depth_to_space` equals a
  4x4 stride-2 'SAME' transposed convolution (`nn.ConvTranspose`) with `kernel_4x4xIxO`.

  Output pixel 2i+a of the transposed convolution reads input pixels i-1, i (a = 0,
  kernel taps 0 and 2) or i, i+1 (a = 1, taps 1 and 3), in each spatial dimension. Placing
  those taps in a 3-wide window centred on i gives one ordinary convolution per phase.
  """
  i, o = kernel_4x4xIxO.shape[2:]
  # taps[a][window position] = index into the 4-tap kernel, or None for a zero.
  taps = ((0, 2, None), (None, 1, 3))
  zero = jnp.zeros((i, o), kernel_4x4xIxO.dtype)
  rows = []
  for y in range(3):
    cols = []
    for x in range(3):
      phases = []
      for a in range(2):
        for b in range(2):
          ty, tx = taps[a][y], taps[b][x]
          phases.append(zero if ty is None or tx is None else kernel_4x4xIxO[ty, tx])
      cols.append(jnp.stack(phases, axis=1))  # I x 4 x O, phase-major like depth_to_space
    rows.append(jnp.stack(cols))
  return jnp.stack(rows).reshape(3, 3, i, 4 * o)


class Upsample2x(nn.Module):
  """A 4x4 stride-2 'SAME' transposed convolution, computed as conv3x3 + depth-to-space.

  Same parameters (`kernel` 4x4xIxO, `bias` O) and the same function as
  `nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')`, but its
  gradient is a plain stride-1 convolution: on XLA:CPU the gradient of the strided
  transposed convolution is an order of magnitude slower than its forward pass.
  """
  features: int
  use_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxHxWxI):
    kernel = self.param("kernel", dcgan_init, (4, 4, x_BxHxWxI.shape[-1], self.features))
    y = jax.lax.conv_general_dilated(
        x_BxHxWxI.astype(self.dtype), subpixel_kernel(kernel).astype(self.dtype), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = depth_to_space(y)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y


class Generator(nn.Module):
  """z `B x latent_dim` -> images `B x S x S x channels` in [-1, 1]."""
  image_size: int = 32
  channels: int = 3
  base_features: int = 64
  # Running statistics keep `momentum` of the old value per training-mode call; 0 makes
  # them the statistics of the current batch (used to set the EMA generator's).
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z_BxZ, *, train: bool):
    check_image_size(self.image_size)
    start, num_up = _GENERATOR_PLAN[self.image_size]
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-5,
                                     scale_init=_bn_scale_init, dtype=self.dtype, name=name)
    width = self.base_features * 2**num_up
    x = nn.Dense(start * start * width, kernel_init=dcgan_init, dtype=self.dtype, name="project")(z_BxZ)
    x = x.reshape(-1, start, start, width)
    x = nn.relu(norm("project_bn")(x))
    for i in range(num_up):
      width //= 2
      x = Upsample2x(width, use_bias=False, dtype=self.dtype, name=f"up{i + 1}")(x)
      x = nn.relu(norm(f"up{i + 1}_bn")(x))
    x = nn.Conv(self.channels, (3, 3), padding="SAME", kernel_init=dcgan_init, dtype=self.dtype,
                name="to_image")(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """images `B x S x S x C` -> (logits `B`, features {name: activation}).

  `features` holds every convolution's activation (`conv1` ... `convN`, each
  `B x h x w x c`) and `pre_logits` (the flattened last activation), for the
  evaluators that read representations by name; with `rotation_head`, also
  `rotation_logits` (`B x 4`), the self-supervised head of SS-GAN (Chen et al. 2019);
  with `projection_dim`, also `projection` (`B x projection_dim`), the SimCLR-style
  projection head of a contrastive loss on real images (as in ContraD, Jeong & Shin 2021).
  """
  image_size: int = 32
  base_features: int = 64
  stride1_convs: bool = True
  rotation_head: bool = False
  projection_dim: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxSxSxC, *, train: bool = True):
    del train  # No batch-dependent layers; kept so every discriminator has one signature.
    check_image_size(self.image_size)
    act = lambda x: nn.leaky_relu(x, 0.1)
    conv = lambda f, k, s, name: nn.Conv(f, (k, k), (s, s), padding="SAME", kernel_init=dcgan_init,
                                         dtype=self.dtype, name=name)
    features = {}
    x = x_BxSxSxC.astype(self.dtype)
    layers = []
    for stage in range(_DISCRIMINATOR_STAGES[self.image_size]):
      width = self.base_features * 2**stage
      if self.stride1_convs:
        layers.append((width, 3, 1))
      layers.append((width, 4, 2))
    if self.stride1_convs:
      layers.append((2 * width, 3, 1))
    for n, (f, k, s) in enumerate(layers, start=1):
      x = act(conv(f, k, s, f"conv{n}")(x))
      features[f"conv{n}"] = x
    x = x.reshape(x.shape[0], -1)
    features["pre_logits"] = x
    logits = nn.Dense(1, kernel_init=dcgan_init, dtype=self.dtype, name="logits")(x)
    if self.projection_dim:
      h = act(nn.Dense(2 * self.projection_dim, dtype=self.dtype, name="projection_hidden")(x))
      features["projection"] = nn.Dense(self.projection_dim, dtype=self.dtype, name="projection")(h).astype(jnp.float32)
    if self.rotation_head:
      features["rotation_logits"] = nn.Dense(4, kernel_init=dcgan_init, dtype=self.dtype,
                                             name="rotation")(x).astype(jnp.float32)
    return logits[:, 0].astype(jnp.float32), features

