"""Multi-host training for real: two train.py processes on this machine, 2 CPU devices each.

They meet through `jax.distributed` (`--distributed`, a coordinator on localhost) and
exchange gradients over gloo, as processes on separate hosts would over the network.
"""

import os
import socket
import subprocess
import sys

import jax

from conftest import REPO, TINY
import parallel_worker
from test_parallel import assert_states_close, restore_on_one_device


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_train_one_model_and_only_process_zero_writes_files(tmp_path, four_steps_on_one_device,
                                                                         mnist_scorer):
  del mnist_scorer  # Its classifier, in the session's cache, is the one both processes read.
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"}
  port = free_port()
  procs = [subprocess.Popen(
      [sys.executable, "train.py", "--config=configs/mnist_dcgan.py", f"--workdir={tmp_path}", *TINY,
       "--config.total_steps=4", "--config.eval_every=4", "--config.evals.representation.n_init=2",
       "--config.evals.representation.probe_features=last_conv_avg",
       # The generation evaluator too, on 200 samples rather than the config's 10,000.
       "--config.evals.generation.num_samples=200",
       "--config.evals.generation.batch_size=100",
       "--distributed", f"--coordinator_address=localhost:{port}",
       "--num_processes=2", f"--process_id={i}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  assert "4 device(s)" in outputs[0]  # One mesh over both processes' devices.
  for i, out in enumerate(outputs):  # Each process read its own half of the 4,000 training images.
    assert f"mnist_5k:train[{2000 * i}:{2000 * (i + 1)}]: 4000 images (28, 28, 1) (2000 in this process)" in out
  assert "representation/gan_discriminator/kmeans_acc" in outputs[0]  # The evaluators ran on every process.
  assert "generation/ema_generator/fid" in outputs[0]
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
  assert sorted(os.listdir(tmp_path / "samples")) == ["step_2.png", "step_4.png"]
  # The same model as 4 steps on this process's single device.
  state = restore_on_one_device(tmp_path, 4)
  assert jax.device_count() == 1
  assert_states_close(parallel_worker.flatten(jax.device_get(state)), four_steps_on_one_device)
