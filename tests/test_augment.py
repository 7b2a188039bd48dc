import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import augment


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


def test_policy_names_are_checked():
  assert augment.parse_policy(" translation,cutout ") == ("translation", "cutout")
  assert augment.parse_policy("") == ()
  with pytest.raises(ValueError, match=r"config.augment='color'.*allowed: translation, cutout"):
    augment.parse_policy("color")
