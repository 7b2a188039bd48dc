"""Data parallelism: 8 fake CPU devices (tests/parallel_worker.py, a subprocess) against 1 here.

The tiny config's batch of 8 puts one image on each of the 8 devices, so equal results
also show that the generator's BatchNorm normalises over the global batch: per-device
statistics of a single image would be nothing like those of the batch.
"""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, tiny_config
import parallel_worker
from gan_jax import checkpoints, loop, parallel, population, state as state_lib

# Float rounding: 8 devices sum the batch in another order than 1, and the CPU's vector width
# changes that order again (an AVX-512 machine measured 9e-4 on an Adam moment of 4.1 after 4
# steps, 2e-4 of it); the same run's states at steps 2 and 4 are 8e4 tolerances apart.
ATOL, RTOL = 1e-5, 1e-3


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  """Runs the worker once for every test here; the 1-device run it resumes is written first."""
  out = tmp_path_factory.mktemp("parallel")
  loop.train_and_evaluate(tiny_config(total_steps=2), str(out / "run_1"))
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"}
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "parallel_worker.py"), str(out)],
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return out


def assert_states_close(actual: dict, expected: dict):
  assert actual.keys() == expected.keys()
  for k in expected:
    np.testing.assert_allclose(actual[k], expected[k], rtol=RTOL, atol=ATOL, err_msg=k)


def restore_on_one_device(workdir, step):
  config = tiny_config()
  gan = state_lib.make_gan(config)
  abstract = checkpoints.abstract_like(jax.eval_shape(lambda: population.init_state(gan, config)),
                                       parallel.replicated(parallel.make_mesh()))
  manager = checkpoints.make_manager(str(workdir), keep=3, read_only=True)
  try:
    return checkpoints.restore(manager, abstract, step)
  finally:
    manager.close()


def test_three_steps_on_eight_devices_equal_one_device(eight_devices, steps_on_one_device):
  assert jax.device_count() == 1
  on_eight = dict(np.load(eight_devices / "three_steps.npz"))
  on_one = steps_on_one_device[3]
  assert on_eight["['step']"].tolist() == [3]
  assert_states_close(on_eight, on_one)
  # The generator's running BatchNorm statistics saw the whole batch on both.
  assert any("batch_stats" in k for k in on_one)  # so assert_states_close compared them


def test_refit_heads_on_eight_devices_equal_one_device(eight_devices):
  on_eight = dict(np.load(eight_devices / "refit.npz"))
  on_one = parallel_worker.refit_heads(parallel_worker.refit_config())
  assert on_one["losses"].shape == (1, 2) and any("code_refit_hidden_1" in k for k in on_one)
  assert_states_close(on_eight, on_one)


def test_checkpoint_saved_on_eight_devices_restores_and_trains_on_one(eight_devices, four_steps_on_one_device):
  state = restore_on_one_device(eight_devices / "run_8", 4)
  assert_states_close(parallel_worker.flatten(jax.device_get(state)), four_steps_on_one_device)
  state = loop.train_and_evaluate(tiny_config(total_steps=6), str(eight_devices / "run_8"))
  assert state["step"].tolist() == [6]


def test_checkpoint_saved_on_one_device_resumes_on_eight(eight_devices, four_steps_on_one_device):
  # run_1 was trained to step 2 here, then resumed to step 4 by the 8-device worker.
  state = restore_on_one_device(eight_devices / "run_1", 4)
  assert_states_close(parallel_worker.flatten(jax.device_get(state)), four_steps_on_one_device)


def test_batch_the_devices_do_not_divide_is_a_config_error(eight_devices):
  message = (eight_devices / "uneven_batch.txt").read_text()
  assert message == "config.batch_size=12 must be divisible by the 8 devices; allowed: a multiple of 8"
  assert not (eight_devices / "uneven").exists()  # Failed before making the workdir.

