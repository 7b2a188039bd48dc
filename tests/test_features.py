import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import discriminator
from gan_jax.evaluation import features


def test_adaptive_max_pool_by_hand():
  x = jnp.arange(2 * 7 * 7 * 3, dtype=jnp.float32).reshape(2, 7, 7, 3)
  pooled = features.adaptive_max_pool(x, grid=4)
  assert pooled.shape == (2, 4, 4, 3)
  # 7 -> cells of 2 rows/cols (the last one a single row/col): cell (0, 0) is max of x[:2, :2].
  np.testing.assert_array_equal(pooled[:, 0, 0], x[:, 1, 1])
  np.testing.assert_array_equal(pooled[:, 3, 3], x[:, 6, 6])


@pytest.mark.parametrize("representation,dim", [("last_conv_avg", 16), ("last_conv_max", 16),
                                                ("dcgan", 16 * (4 + 8 + 16)),
                                                ("pre_logits", 4 * 4 * 16)])
def test_discriminator_features_shapes_and_batching(representation, dim):
  d = discriminator()
  images = np.random.default_rng(0).integers(0, 256, (7, 28, 28, 1), dtype=np.uint8)
  variables = d.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  out = features.discriminator_features(d, variables, images, representation=representation, batch_size=3)
  assert out.shape == (7, dim) and out.dtype == np.float32
  # Batching (with a padded last batch) does not change any image's features.
  whole = features.discriminator_features(d, variables, images, representation=representation, batch_size=7)
  np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-6)


def test_several_representations_in_one_pass_equal_one_at_a_time():
  d = discriminator(blocks={"contrastive": dict(projection_dim=5)})
  images = np.random.default_rng(1).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
  variables = d.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  names = ("dcgan", "projection", "last_conv_max")
  together = features.discriminator_features(d, variables, images, representation=names, batch_size=2)
  assert isinstance(together, tuple) and len(together) == 3
  for name, out in zip(names, together):
    np.testing.assert_allclose(out, features.discriminator_features(d, variables, images, representation=name),
                               rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r"representation 'fc7' is not known"):
    features.discriminator_features(d, variables, images, representation=("dcgan", "fc7"))


def test_projection_head_is_read_where_the_discriminator_has_one():
  images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  d = discriminator(blocks={"contrastive": dict(projection_dim=5)})
  variables = d.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  assert features.discriminator_features(d, variables, images, representation="projection").shape == (3, 5)
  plain = discriminator()
  variables = plain.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
  with pytest.raises(ValueError, match=r"representation 'projection': this discriminator has no such head"):
    features.discriminator_features(plain, variables, images, representation="projection")


def test_unknown_representation_is_named():
  with pytest.raises(ValueError, match=r"representation 'fc7' is not known; allowed: last_conv_avg, last_conv_max, dcgan, pre_logits"):
    features.discriminator_features(None, None, np.zeros((1, 28, 28, 1), np.uint8), representation="fc7")


def test_pca_whiten_is_fitted_on_the_training_split_only():
  rng = np.random.default_rng(0)
  train = rng.normal(size=(500, 20)) * np.linspace(0.1, 10, 20)
  test = rng.normal(size=(100, 20)) * 100.0  # Other statistics: must not move the projection.
  white_train, white_test = features.pca_whiten(train, test, 5)
  assert white_train.shape == (500, 5) and white_test.shape == (100, 5) and white_train.dtype == np.float32
  np.testing.assert_allclose(np.cov(white_train, rowvar=False), np.eye(5), atol=1e-3)
  again_train, _ = features.pca_whiten(train, test[:10], 5)
  np.testing.assert_allclose(again_train, white_train, rtol=1e-5, atol=1e-5)
  assert features.pca_whiten(train, test, 50)[0].shape == (500, 20)  # At most D components.


def test_a_conv_representation_of_a_backbone_without_convolutions_is_named():
  # A model file may name its layers otherwise (an MLP, say); pre_logits still reads it.
  outputs = {"dense1": jnp.ones((2, 8)), "pre_logits": jnp.ones((2, 8))}
  with pytest.raises(ValueError, match=r"representation 'last_conv_max' reads convolutions \(conv1, conv2, \.\.\.\), "
                                       r"which this discriminator's backbone does not name; it gives: dense1, pre_logits"):
    features.select_representation(outputs, "last_conv_max")
  assert features.select_representation(outputs, "pre_logits").shape == (2, 8)
