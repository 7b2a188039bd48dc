"""SCAN's neighbours: mined by cosine in blocks, refreshed on schedule, fed to the step."""

import jax
import numpy as np
import pytest

from conftest import initial_population, initial_state, tiny_config
from gan_jax import data
from gan_jax import neighbours
from gan_jax import parallel
from gan_jax import population
from gan_jax import step as step_lib


def test_nearest_neighbours_by_cosine_in_blocks():
  # Rows 0 and 3 point the same way (at different lengths), 1 and 4 nearly; 2 is alone
  # (cosines -0.20 with row 1, -0.24 with 4, -0.98 with 0).
  # Blocks of 2 over 5 rows: the last block is padded, and padding never becomes a neighbour.
  e = jax.numpy.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -0.2], [3.0, 0.1], [0.1, 2.0]])
  got = neighbours.nearest_neighbours(e, k=2, block=2)
  np.testing.assert_array_equal(got, [[3, 4], [4, 3], [1, 4], [0, 4], [1, 3]])
  assert got.dtype == jax.numpy.int32
  # One block or several: the same table.
  np.testing.assert_array_equal(neighbours.nearest_neighbours(e, k=2, block=1024), got)


def test_mined_neighbours_need_a_training_set_larger_than_k():
  config = tiny_config("mnist_infogan", **{"infogan.neighbours.k": 5})
  with pytest.raises(ValueError, match=r"config.infogan.neighbours.k=5 needs a training set of more than 5 images "
                                       r"\(given: 5; init_state's num_examples\)"):
    initial_state(config, num_examples=5)


def test_mined_neighbours_are_refreshed_on_schedule_and_fed_to_the_step():
  # The tiny config's training split, k = 3, refreshed every 2 steps: the table is mined
  # from D as it is at steps 0 and 2, and each step's neighbour term sees real images.
  config = tiny_config("mnist_infogan", **{"infogan.neighbours.k": 3, "infogan.neighbours.refresh": 2})
  mesh = parallel.make_mesh()
  train = data.load_process_share(config.data, "train", image_size=config.image_size, channels=config.channels,
                                  mesh=mesh)
  images = parallel.host_to_global(train.images, parallel.batch_sharded(mesh))
  n = images.shape[0]
  gan, state = initial_population(config, num_examples=n, mesh=mesh)
  assert state["neighbours"].shape == (1, n, 3)  # A population of one.
  train_fn = step_lib.make_train_fn(gan, config, mesh, n)
  mine = jax.jit(lambda d: neighbours.mine_neighbours(gan, d, images, 3))
  tables, discriminators = [], []
  for _ in range(3):
    discriminators.append(population.unstack(jax.device_get(state["discriminator"]), 0))
    state, metrics = train_fn(state, population.weights(config), images)
    tables.append(np.asarray(state["neighbours"][0]))
    assert np.isfinite(metrics["d_code_neighbour_agreement"]).all()
  at_0, at_2 = np.asarray(mine(discriminators[0])), np.asarray(mine(discriminators[2]))
  assert not np.array_equal(at_0, at_2)  # Else the check below could not tell a refresh from none.
  np.testing.assert_array_equal(tables[0], at_0)
  np.testing.assert_array_equal(tables[1], at_0)  # Step 1: kept.
  np.testing.assert_array_equal(tables[2], at_2)  # Step 2: mined again.
  assert not np.any(tables[2] == np.arange(n)[:, None])  # Never an image's own index.
