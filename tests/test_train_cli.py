"""train.py as a user runs it, with config overrides: its command-line errors. Training,
resuming and rerunning at total_steps through train.py: tests/test_faults.py."""

import os
import subprocess
import sys

from conftest import REPO, TINY


def run_train(workdir, *flags):
  cmd = [sys.executable, "train.py", "--config=configs/mnist_dcgan.py", f"--workdir={workdir}", *TINY, *flags]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_typo_in_config_field_fails_with_its_name(tmp_path):
  result = run_train(tmp_path, "--config.totl_steps=5")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "train.py: --config.totl_steps: configs/mnist_dcgan.py has no field totl_steps; did you mean "
      "--config.total_steps?")
  assert os.listdir(tmp_path) == []


def test_cluster_flags_without_distributed_and_an_undetected_cluster_are_one_line_errors(tmp_path):
  result = run_train(tmp_path, "--num_processes=2")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "train.py: --coordinator_address, --num_processes and --process_id need --distributed")
  result = run_train(tmp_path, "--distributed")  # No cluster here for JAX to detect.
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("train.py: --distributed: ") and "--coordinator_address" in last, result.stderr[-2000:]
  assert os.listdir(tmp_path) == []
