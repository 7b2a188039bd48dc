import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from gan_jax import augment
from gan_jax import losses
from gan_jax import training


def test_translation_shifts_each_image_by_at_most_an_eighth_with_zero_fill():
  x = jax.random.uniform(jax.random.PRNGKey(0), (16, 16, 16, 1), minval=1.0, maxval=2.0)
  shifted = np.asarray(augment.translation(jax.random.PRNGKey(1), x))
  moves = set()
  for original, image in zip(np.asarray(x), shifted):
    found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
             if np.array_equal(np.roll(original, (dy, dx), axis=(0, 1))[2:-2, 2:-2], image[2:-2, 2:-2])]
    assert len(found) == 1
    dy, dx = found[0]
    moves.add(found[0])
    assert (image == 0).sum() == 16 * 16 - (16 - abs(dy)) * (16 - abs(dx))  # Uncovered border is zero.
  assert len(moves) > 3  # Independent per image.


def test_cutout_zeroes_one_square_of_half_the_size_clipped_at_the_border():
  x = jnp.ones((32, 8, 8, 3))
  out = np.asarray(augment.cutout(jax.random.PRNGKey(2), x))
  for image in out:
    rows, cols = np.nonzero(image[..., 0] == 0)
    assert np.all(image[rows, cols] == 0)
    assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
    assert 4 <= len(rows) <= 16
  assert any(len(np.nonzero(image[..., 0] == 0)[0]) == 16 for image in out)  # Some fall wholly inside.


def test_affine_matches_scipy_with_the_same_draws():
  from scipy import ndimage
  x = jax.random.uniform(jax.random.PRNGKey(0), (6, 12, 10, 2))
  key = jax.random.PRNGKey(3)
  out = np.asarray(augment.affine(key, x))
  # The transformation's own draws, by hand, and scipy's warp with their inverse matrix.
  kr, ks, kh = jax.random.split(key, 3)
  angles = np.deg2rad(np.asarray(jax.random.uniform(kr, (6,), minval=-20.0, maxval=20.0)))
  scales = np.asarray(jax.random.uniform(ks, (6,), minval=0.9, maxval=1.1))
  shears = np.asarray(jax.random.uniform(kh, (6,), minval=-0.2, maxval=0.2))
  centre = np.array([5.5, 4.5])
  for image, result, angle, scale, shear in zip(np.asarray(x), out, angles, scales, shears):
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = scale * rotation @ np.array([[1.0, shear], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    for c in range(2):
      expected = ndimage.affine_transform(image[..., c], inverse, offset=centre - inverse @ centre, order=1,
                                          mode="nearest")
      np.testing.assert_allclose(result[..., c], expected, atol=1e-5)
  assert len({round(float(a), 3) for a in angles}) == 6  # Independent per image.
  identity = augment.affine(key, x, max_degrees=0.0, max_scale=0.0, max_shear=0.0)
  np.testing.assert_allclose(identity, x, atol=1e-6)


def test_policy_names_are_checked():
  assert augment.parse_policy(" translation,cutout ") == ("translation", "cutout")
  assert augment.parse_policy("") == ()
  with pytest.raises(ValueError, match=r"config.augment='color'.*allowed: translation, cutout, affine"):
    augment.parse_policy("color")


def test_rotate90_and_rotation_loss():
  x = jnp.arange(2 * 4 * 4, dtype=jnp.float32).reshape(2, 4, 4, 1)
  turns = jnp.array([1, 3])
  rotated = losses.rotate90(x, turns)
  np.testing.assert_array_equal(rotated[0], jnp.rot90(x[0], 1))
  np.testing.assert_array_equal(rotated[1], jnp.rot90(x[1], 3))
  logits = jax.nn.one_hot(turns, 4) * 100.0
  loss, accuracy = losses.rotation_loss(logits, turns)
  assert float(loss) < 1e-6 and float(accuracy) == 1.0


def test_nt_xent_rewards_matching_views():
  z = jax.random.normal(jax.random.PRNGKey(0), (8, 16))
  matched, accuracy = losses.nt_xent(z, z + 0.01, temperature=0.1)
  shuffled, _ = losses.nt_xent(z, jnp.roll(z, 1, axis=0), temperature=0.1)
  assert float(accuracy) == 1.0 and float(matched) < float(shuffled)
  # Hand-computed for 2 pairs of orthogonal unit vectors: each row's positive has cosine 1,
  # its two negatives 0, so loss = -log(e^(1/t) / (e^(1/t) + 2)).
  z1, z2 = jnp.eye(4)[:2], jnp.eye(4)[:2]
  loss, _ = losses.nt_xent(z1, z2, temperature=0.5)
  np.testing.assert_allclose(float(loss), -np.log(np.e**2 / (np.e**2 + 2)), rtol=1e-5)


def test_step_with_rotation_contrastive_and_augmentation_trains_the_heads():
  config = tiny_config(augment="translation,cutout", **{"rotation.d_weight": 1.0, "rotation.g_weight": 0.2,
                                                         "contrastive.weight": 1.0})
  training.validate_config(config)
  gan = training.make_gan(config)
  state = jax.jit(lambda: training.init_state(gan, config))()
  assert {"rotation", "projection"} <= set(state["discriminator"]["params"])
  real = jax.random.uniform(jax.random.PRNGKey(0), (1, 8, 28, 28, 1), minval=-1.0, maxval=1.0)
  step = jax.jit(lambda s, r: training.train_step(s, r, gan=gan, rotation_d_weight=1.0, rotation_g_weight=0.2,
                                                  augment_policy=("translation", "cutout"), contrastive_weight=1.0))
  new_state, metrics = step(state, real)
  assert {"d_rotation_loss", "d_rotation_acc", "g_rotation_loss", "d_contrastive_loss"} <= set(metrics)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  for name in ("rotation", "projection"):
    head = lambda s: s["discriminator"]["params"][name]["kernel"]
    assert not np.allclose(head(state), head(new_state)), name
