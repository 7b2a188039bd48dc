"""The fast forms of `gan_jax.conv` compute the same functions as the plain convolutions."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import discriminator
from gan_jax import conv
from gan_jax.models import dcgan


def random(seed, shape, scale=1.0):
  """Normal values drawn by NumPy: JAX's random kernels would each compile for their shape."""
  return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape, np.float32))


def random_like(seed, tree, scale=0.02):
  """`tree`'s structure and shapes (`jax.eval_shape` of an init, say) filled by `random`."""
  leaves, treedef = jax.tree.flatten(tree)
  return jax.tree.unflatten(treedef, [random(seed + i, leaf.shape, scale) for i, leaf in enumerate(leaves)])


@pytest.mark.parametrize("size", [32, 14, 7])  # 32: the phase kernel gradient too; 7: odd, XLA's.
def test_phase_gradients_equal_xla_gradients(size):
  x, kernel = random(0, (3, size, size, 5)), random(1, (4, 4, 5, 6), 0.1)
  g = random(2, (3, (size + 1) // 2, (size + 1) // 2, 6))
  y_xla, vjp_xla = jax.vjp(lambda x, k: conv.conv2d(x, k, 2, "xla"), x, kernel)
  y_phase, vjp_phase = jax.vjp(lambda x, k: conv.conv2d(x, k, 2, "phase"), x, kernel)
  np.testing.assert_array_equal(y_phase, y_xla)
  for phase, xla in zip(vjp_phase(g), vjp_xla(g)):
    np.testing.assert_allclose(phase, xla, atol=1e-5 * float(jnp.abs(xla).max()))


def test_upsample2x_equals_conv_transpose_at_odd_and_even_sizes():
  for shape in [(2, 5, 6, 3), (1, 4, 4, 3)]:
    x = random(0, shape)
    reference = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding="SAME", use_bias=False)
    kernel = random(1, (4, 4, 3, 4), 0.3)
    np.testing.assert_allclose(conv.upsample2x(x, kernel), reference.apply({"params": {"kernel": kernel}}, x),
                               atol=1e-5)


def test_discriminator_is_the_same_function_and_parameters_with_either_backward():
  images = random(0, (4, 32, 32, 3))
  fast, plain = (discriminator(32, discriminator_stride1_convs=True, conv_backward=b) for b in ("phase", "xla"))
  # Random values in D's variables (its initialiser is not what is compared here).
  variables = random_like(1, jax.eval_shape(fast.init, jax.random.PRNGKey(1), images))
  loss = lambda d: jax.jit(jax.grad(lambda v, x: jnp.mean(d.apply(v, x)[0] ** 2), argnums=(0, 1)))(variables, images)
  for a, b in zip(jax.tree.leaves(loss(fast)), jax.tree.leaves(loss(plain))):
    np.testing.assert_allclose(a, b, atol=1e-5 * float(jnp.abs(b).max()))
  # Parameters as nn.Conv names and shapes them, so checkpoints of either load in both.
  layer = dcgan.Conv(6, 4, 2)
  shapes = jax.eval_shape(layer.init, jax.random.PRNGKey(2), images)
  reference = nn.Conv(6, (4, 4), (2, 2), padding="SAME")
  assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, jax.eval_shape(reference.init, jax.random.PRNGKey(2),
                                                                                      images))
  params = random_like(2, shapes)
  np.testing.assert_allclose(layer.apply(params, images), reference.apply(params, images), atol=1e-5)


def test_unknown_backward_is_a_clear_error():
  with pytest.raises(ValueError, match=r"config.model.conv_backward='fast'; allowed: phase, xla"):
    conv.conv2d(random(0, (1, 4, 4, 1)), random(1, (4, 4, 1, 1)), 2, "fast")


def test_upsample2x_gradients_equal_with_either_backward():
  x, kernel, g = random(0, (2, 5, 6, 3)), random(1, (4, 4, 3, 4), 0.3), random(2, (2, 10, 12, 4))
  phase = jax.vjp(lambda x, k: conv.upsample2x(x, k, "phase"), x, kernel)[1](g)
  xla = jax.vjp(lambda x, k: conv.upsample2x(x, k, "xla"), x, kernel)[1](g)
  for a, b in zip(phase, xla):
    np.testing.assert_allclose(a, b, atol=1e-5 * float(jnp.abs(b).max()))
