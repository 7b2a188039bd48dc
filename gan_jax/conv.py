"""Convolutions of the GAN models, in the forms XLA runs fastest.

A 4x4 stride-2 'SAME' convolution on an even-sized input is a 2x2 stride-1 convolution
in phase space (space-to-depth of the input padded by 1), and its transpose, the
generator's 2x upsampling, is a 2x2 stride-1 convolution followed by depth-to-space.
On XLA:CPU this matters most: the strided forms' gradients are input-dilated
convolutions, which its fast convolution library does not take, and ran 2-4x slower than
a plain convolution here (docs/research_log.md, `step_parts.py`); on an H100 the hand-written
gradients made the standard CNN step 1.11-1.17x faster too. Every function here is the same function
as the plain form (tested to 1e-5); only the arithmetic that computes it differs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
# `backward=`: "phase" computes the gradients of the 4x4 stride-2 convolutions and of
# `upsample2x` by hand (in phase space, as matrix products), "xla" leaves them to XLA.
# "phase" measured faster on a 2-core CPU (1.67x the standard CNN step) and on an H100
# (1.11-1.17x); not measured on TPU.
BACKWARDS = ("phase", "xla")
# Input pixels from which the kernel gradient in phase space beat XLA's (measured: 32x32
# won, 16x16 and 8x8 lost, on a 2-core x86 CPU).
PHASE_KERNEL_GRAD_MIN_PIXELS = 1024


def space_to_depth(x_Bx2Hx2WxC: jax.Array) -> jax.Array:
  """Each 2x2 pixel block into channels `(2, 2, C)`: `B x 2H x 2W x C -> B x H x W x 4C`."""
  b, h2, w2, c = x_Bx2Hx2WxC.shape
  x = x_Bx2Hx2WxC.reshape(b, h2 // 2, 2, w2 // 2, 2, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h2 // 2, w2 // 2, 4 * c)


def depth_to_space(x_BxHxWx4C: jax.Array) -> jax.Array:
  """Channels `(2, 2, C)` into 2x2 pixel blocks: `B x H x W x 4C -> B x 2H x 2W x C`."""
  b, h, w, c4 = x_BxHxWx4C.shape
  x = x_BxHxWx4C.reshape(b, h, w, 2, 2, c4 // 4)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c4 // 4)


def _pad1(x):
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _phase_kernel(kernel_4x4xIxO: jax.Array) -> jax.Array:
  """`K2[ty, tx, (py, px, i), o] = k[2ty + py, 2tx + px, i, o]`: the 2x2 kernel on
  `space_to_depth(pad(x, 1))` that computes the 4x4 stride-2 'SAME' convolution."""
  i, o = kernel_4x4xIxO.shape[2:]
  k = kernel_4x4xIxO.reshape(2, 2, 2, 2, i, o)  # ty, py, tx, px, i, o
  return k.transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * i, o)


def _from_phase_kernel(k2_2x2x4IxO: jax.Array) -> jax.Array:
  i4, o = k2_2x2x4IxO.shape[2:]
  return k2_2x2x4IxO.reshape(2, 2, 2, 2, i4 // 4, o).transpose(0, 2, 1, 3, 4, 5).reshape(4, 4, i4 // 4, o)


def upsample2x(x_BxHxWxI: jax.Array, kernel_4x4xIxO: jax.Array, backward: str = "phase") -> jax.Array:
  """`nn.ConvTranspose(O, (4, 4), strides=(2, 2), padding='SAME')` with this kernel:
  `B x H x W x I -> B x 2H x 2W x O`, as one 2x2 stride-1 convolution + depth-to-space.

  Output pixel 2j-1 reads input pixels j-1, j with kernel taps 1, 3 and pixel 2j reads
  them with taps 0, 2 (per spatial dimension); so a 2x2 window at j of the input padded
  by 1 yields the 2x2 output block (2j-1, 2j), and the blocks, cropped by one pixel on
  each side, are the output. Four taps per output pixel, as the transposed convolution.
  With the "phase" backward (see `BACKWARDS`) the kernel gradient is one matrix product.
  """
  i, o = kernel_4x4xIxO.shape[2:]
  k = kernel_4x4xIxO.reshape(2, 2, 2, 2, i, o)[:, ::-1, :, ::-1]  # ty, by, tx, bx: tap 2t + 1 - b
  k2 = k.transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, i, 4 * o)
  conv = _conv2x2_product_grad if check_backward(backward) == "phase" else _conv2x2
  return depth_to_space(conv(_pad1(x_BxHxWxI), k2))[:, 1:-1, 1:-1]


def _conv2x2(x, k2):
  return lax.conv_general_dilated(x, k2, (1, 1), "VALID", dimension_numbers=_NHWC)


@jax.custom_vjp
def _conv2x2_product_grad(x, k2):
  return _conv2x2(x, k2)


def _conv2x2_fwd(x, k2):
  return _conv2x2(x, k2), (x, k2)


def _conv2x2_bwd(residuals, g):
  """dk as (4 taps x I) x (B H W) @ (B H W) x O over an im2col of x (3x faster than XLA's
  weight-gradient convolution on XLA:CPU here); dx is XLA's."""
  x, k2 = residuals
  b, h, w, o = g.shape
  i = x.shape[-1]
  dx = jax.vjp(lambda x: _conv2x2(x, k2), x)[1](g)[0]
  columns = jnp.concatenate([x[:, ty:ty + h, tx:tx + w] for ty in range(2) for tx in range(2)], axis=-1)
  columns_t = lax.optimization_barrier(columns.reshape(-1, 4 * i).T)  # See `_phase_kernel_grad`.
  dk = (columns_t @ g.reshape(-1, o)).reshape(2, 2, i, o)
  return dx, dk.astype(k2.dtype)


_conv2x2_product_grad.defvjp(_conv2x2_fwd, _conv2x2_bwd)


def check_backward(backward: str) -> str:
  """`backward` if it is one of `BACKWARDS`, else the config error naming the choices."""
  if backward not in BACKWARDS:
    raise ValueError(f"config.model.conv_backward={backward!r}; allowed: {', '.join(BACKWARDS)}")
  return backward


def _plain(x, kernel, stride):
  return lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=_NHWC)


def _phase_input_grad(kernel, g, x_shape):
  """dx of the 4x4 stride-2 'SAME' convolution: the transposed 2x2 phase convolution."""
  k2t = jnp.transpose(_phase_kernel(kernel), (0, 1, 3, 2))[::-1, ::-1]
  dx_phases = lax.conv_general_dilated(g, k2t, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC)
  return depth_to_space(dx_phases)[:, 1:x_shape[1] + 1, 1:x_shape[2] + 1]


def _phase_kernel_grad(x, g):
  """dk of the 4x4 stride-2 'SAME' convolution as one matrix product: the four window
  shifts go on the gradient (`B x H/2+1 x W/2+1 x 4O`) instead of an im2col of x."""
  x_phases = space_to_depth(_pad1(x))
  i4, o = x_phases.shape[-1], g.shape[-1]
  g_shifts = jnp.stack([jnp.pad(g, ((0, 0), (ty, 1 - ty), (tx, 1 - tx), (0, 0)))
                        for ty in range(2) for tx in range(2)], axis=3)
  # The barrier keeps XLA from folding the transpose into the product, whose form with
  # both operands contracted on their major dimension XLA:CPU runs 2-3x slower.
  g_t = lax.optimization_barrier(g_shifts.reshape(-1, 4 * o).T)
  k2_t = g_t @ x_phases.reshape(-1, i4)  # (ty, tx, o) x 4I
  return _from_phase_kernel(k2_t.reshape(2, 2, o, i4).transpose(0, 1, 3, 2))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _phase_conv(x, kernel, stride):
  return _plain(x, kernel, stride)


def _phase_conv_fwd(x, kernel, stride):
  return _plain(x, kernel, stride), (x, kernel)


def _phase_conv_bwd(stride, residuals, g):
  x, kernel = residuals
  dx = _phase_input_grad(kernel, g, x.shape)
  if x.shape[1] * x.shape[2] >= PHASE_KERNEL_GRAD_MIN_PIXELS:
    dk = _phase_kernel_grad(x, g)
  else:
    dk = jax.vjp(lambda k: _plain(x, k, stride), kernel)[1](g)[0]
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


_phase_conv.defvjp(_phase_conv_fwd, _phase_conv_bwd)


def conv2d(x_BxHxWxI: jax.Array, kernel_KxKxIxO: jax.Array, stride: int = 1, backward: str = "phase") -> jax.Array:
  """A 'SAME' convolution, NHWC x HWIO, the same function as `nn.Conv(padding='SAME')`;
  its gradient per `backward` (see `BACKWARDS`), for 4x4 stride-2 kernels on even sizes."""
  h, w = x_BxHxWxI.shape[1:3]
  phase_form = stride == 2 and kernel_KxKxIxO.shape[:2] == (4, 4) and h % 2 == 0 and w % 2 == 0
  if check_backward(backward) == "phase" and phase_form:
    return _phase_conv(x_BxHxWxI, kernel_KxKxIxO, stride)
  return _plain(x_BxHxWxI, kernel_KxKxIxO, stride)
