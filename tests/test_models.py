import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import discriminator
from gan_jax import models
from gan_jax.models import dcgan


def test_upsample_equals_flax_conv_transpose():
  # Values drawn by NumPy: JAX's random kernels would each compile for their shape.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 5, 6, 3), np.float32))
  up = dcgan.Upsample2x(4)
  variables = jax.tree.map(lambda p: jnp.asarray(0.1 * rng.standard_normal(p.shape, np.float32)),
                           jax.eval_shape(up.init, jax.random.PRNGKey(1), x))
  reference = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding="SAME")
  np.testing.assert_allclose(up.apply(variables, x), reference.apply(variables, x), atol=1e-5)


@pytest.mark.parametrize("size,channels,convs", [(28, 1, 7), (32, 3, 7), (64, 3, 9)])
def test_shapes_and_named_features(size, channels, convs):
  # Shapes and names only: traced by jax.eval_shape, nothing compiled or run.
  g = dcgan.Generator(image_size=size, channels=channels, generator_features=4)
  z = jax.ShapeDtypeStruct((2, 8), jnp.float32)
  g_vars = jax.eval_shape(lambda z: g.init(jax.random.PRNGKey(1), z, train=False), z)
  images, updates = jax.eval_shape(lambda v, z: g.apply(v, z, train=True, mutable=["batch_stats"]), g_vars, z)
  assert images.shape == (2, size, size, channels)
  assert "batch_stats" in g_vars and set(updates) == {"batch_stats"}

  d = discriminator(size, discriminator_stride1_convs=True)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.PRNGKey(2), x), images)
  logits, features = jax.eval_shape(d.apply, d_vars, images)
  assert logits.shape == (2,)
  assert list(features) == [f"conv{i}" for i in range(1, convs + 1)] + ["pre_logits"]
  assert features["conv1"].shape[:3] == (2, size, size)
  assert features["pre_logits"].shape == (2, np.prod(features[f"conv{convs}"].shape[1:]))  # One image's last conv.


def test_standard_cnn_matches_sngan_table3():
  # The SNGAN paper's 32-pixel "standard CNN": D widths 64-64-128-128-256-256-512.
  # Shapes only: traced by jax.eval_shape, nothing compiled or run.
  d = discriminator(32, discriminator_stride1_convs=True, discriminator_features=64)
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  _, features = jax.eval_shape(lambda x: d.apply(d.init(jax.random.PRNGKey(0), x), x), x)
  assert [features[f"conv{i}"].shape[-1] for i in range(1, 8)] == [64, 64, 128, 128, 256, 256, 512]
  g = dcgan.Generator(image_size=32, channels=3)
  params = jax.eval_shape(lambda z: g.init(jax.random.PRNGKey(0), z, train=False),
                          jax.ShapeDtypeStruct((1, 128), jnp.float32))["params"]
  assert params["project"]["kernel"].shape == (128, 4 * 4 * 512)
  assert [params[f"up{i}"]["kernel"].shape[-1] for i in (1, 2, 3)] == [256, 128, 64]
  assert params["to_image"]["kernel"].shape == (3, 3, 64, 3)


def test_plain_dcgan_discriminator_has_only_strided_convs():
  d = discriminator()
  x = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
  _, features = jax.eval_shape(lambda x: d.apply(d.init(jax.random.PRNGKey(0), x), x), x)
  assert [features[k].shape[1:] for k in ("conv1", "conv2", "conv3")] == [(14, 14, 4), (7, 7, 8), (4, 4, 16)]


def test_unsupported_size_and_unknown_model_are_clear_errors():
  with pytest.raises(ValueError, match=r"config.image_size=48 .* allowed: 28, 32, 64"):
    dcgan.check_image_size(48)
  with pytest.raises(ValueError, match=r"config.model.name='dcgna'.*allowed: dcgan"):
    models.get_model_module("dcgna")


def test_spectral_norm_keeps_the_top_singular_value_near_one():
  from gan_jax.models import resnet
  d = models.Discriminator(resnet.Backbone(discriminator_features=16))
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 32, 32, 3))
  variables = d.init(jax.random.PRNGKey(1), x)
  # Scale the weights far from norm 1, then run the power iteration a few times.
  params = jax.tree.map(lambda w: 5.0 * w, variables["params"])
  stats = variables["batch_stats"]
  for _ in range(20):
    _, updates = d.apply({"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
    stats = updates["batch_stats"]
  kernel = params["block2"]["conv1"]["conv"]["kernel"]  # 3x3x16x16
  sigma_true = np.linalg.svd(np.asarray(kernel).reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
  sigma = stats["block2"]["conv1"]["sn"]["conv/kernel/sigma"]
  assert sigma_true > 3.0  # Far from 1 before normalisation.
  # The kernel the layer uses, W / sigma, has top singular value near 1 (power iteration
  # converges slowly when the top two singular values are close: 20 iterations here).
  normalised = np.asarray(kernel).reshape(-1, kernel.shape[-1]) / float(sigma)
  np.testing.assert_allclose(np.linalg.svd(normalised, compute_uv=False)[0], 1.0, rtol=1e-2)
