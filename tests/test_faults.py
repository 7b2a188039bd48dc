"""Training that survives faults: a stop signal saves the step reached and the same command
resumes from it; a non-finite update either stops training before a bad checkpoint or is
skipped (`config.skip_nonfinite_updates`), exercised through `config.debug_nan_step`."""

import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading

import jax
from jax.experimental import multihost_utils
import numpy as np
import pytest

from conftest import REPO, TINY, tiny_config
from gan_jax import loop
from gan_jax import step as step_lib
from test_parallel import restore_on_one_device

STOPPED = re.compile(r"Stopped by (\S+): the checkpoint at step (\d+) is complete in (\S+); (.*)")


# 200 steps of the tiny model: a few seconds, long enough to be killed at random moments.
KILLED = ["--config.total_steps=200", "--config.save_every=20", "--config.log_every=20",
          "--config.sample_every=1000"]
RESUMED = re.compile(r"Resumed from \S+ at step (\d+)\.")
LOGGED = re.compile(r"\] step (\d+): ")


@pytest.fixture
def live_ctrl_c():
  """SIGINT as a terminal's Python has it. A shell that starts a job in the background
  without job control (`pytest ... &` in a script) hands it SIGINT ignored, which training
  rightly leaves ignored; the Ctrl-C tests must not depend on how the suite was started."""
  inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
  yield
  signal.signal(signal.SIGINT, inherited)


def complete_steps(workdir) -> list[int]:
  return sorted(int(name) for name in os.listdir(workdir / "checkpoints") if name.isdigit())


def run_train(workdir, *flags, signum=None, delay=0.0, fault=()):
  """train.py on `workdir` (through tests/fault_worker.py with `fault`), sent `signum`
  `delay` seconds after its first log line of a step. Returns (exit status, log lines)."""
  script = ["tests/fault_worker.py", *fault] if fault else ["train.py"]
  cmd = [sys.executable, *script, "--config=configs/mnist_dcgan.py", f"--workdir={workdir}", *TINY, *KILLED, *flags]
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  timers = [threading.Timer(300, proc.kill)]  # A hung run fails the test instead of hanging it.
  timers[0].start()
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line)
      if signum is not None and len(timers) == 1 and LOGGED.search(line):  # The loop runs.
        timers.append(threading.Timer(delay, proc.send_signal, [signum]))
        timers[-1].start()
    proc.wait()
  finally:
    for timer in timers:
      timer.cancel()
  return proc.returncode, lines


def resumed_step(lines) -> int | None:
  steps = [int(m.group(1)) for m in map(RESUMED.search, lines) if m]
  assert len(steps) <= 1, steps
  return steps[0] if steps else None


def test_kill_9_anywhere_then_resuming_equals_a_straight_run(tmp_path):
  """kill -9 in the middle of a checkpoint write and at a random moment, then SIGTERM, each
  followed by the same command: every run resumes from the latest complete checkpoint,
  never a partial one, loses at most save_every steps, and the parameters at the end equal
  those of a run that was never interrupted."""
  rng = random.Random(0)
  workdir = tmp_path / "interrupted"

  # In the middle of the save of step 40: Orbax is still writing it, under a temporary name.
  status, lines = run_train(workdir, fault=("kill", "40"))
  assert status == -signal.SIGKILL, "".join(lines[-30:])
  assert complete_steps(workdir) == [20]
  assert [n for n in os.listdir(workdir / "checkpoints") if not n.isdigit()][0].startswith("40.")

  # At a random moment of the training loop.
  status, lines = run_train(workdir, signum=signal.SIGKILL, delay=rng.uniform(0.0, 0.5))
  assert status == -signal.SIGKILL, "".join(lines[-30:])
  assert resumed_step(lines) == 20  # The newest complete checkpoint; never the partial one.
  logged = [int(m.group(1)) for m in map(LOGGED.search, lines) if m]
  assert complete_steps(workdir)[-1] >= max(logged, default=20) - 20  # At most save_every steps lost.

  # SIGTERM: the step reached is saved (off the save_every grid if need be); exit status 0.
  complete = complete_steps(workdir)
  status, lines = run_train(workdir, signum=signal.SIGTERM, delay=rng.uniform(0.0, 0.5))
  log = "".join(lines)
  assert status == 0, log[-3000:]
  assert resumed_step(lines) == complete[-1]
  stopped = [m for m in map(STOPPED.search, lines) if m]
  assert len(stopped) == 1, log[-3000:]
  reason, step, directory, hint = stopped[0].groups()
  assert reason == "SIGTERM" and int(step) == complete_steps(workdir)[-1] and int(step) < 200
  assert directory == str(workdir / "checkpoints") and hint.startswith("resume with the same command: ")

  status, lines = run_train(workdir)
  assert status == 0, "".join(lines[-30:])
  assert resumed_step(lines) == int(step) and complete_steps(workdir)[-1] == 200
  assert os.path.exists(workdir / "samples" / "step_200.png")
  status, lines = run_train(workdir)  # At total_steps: nothing is trained again.
  assert status == 0 and resumed_step(lines) == 200, "".join(lines[-30:])
  assert not any("First call" in line for line in lines)

  # The run never interrupted: train.py's config (TINY and KILLED) trained in this process.
  config = tiny_config(total_steps=200, save_every=20, log_every=20, sample_every=1000)
  assert loop.train_and_evaluate(config, str(tmp_path / "straight"))["step"].tolist() == [200]
  interrupted, straight = (jax.device_get(restore_on_one_device(w, 200)) for w in (workdir, tmp_path / "straight"))
  jax.tree.map(np.testing.assert_array_equal, interrupted, straight)


def test_a_failed_checkpoint_write_stops_training_with_one_line(tmp_path):
  # From the save of step 40 on, no file can grow, as on a full disk. Logging every 10
  # steps, the failure is found at the first log step after the write has ended.
  status, lines = run_train(tmp_path, "--config.log_every=10", fault=("disk_full", "40"))
  assert status == 1
  assert lines[-1].startswith(f"train.py: writing the checkpoint of step 40 to {tmp_path / 'checkpoints'} failed ("), (
      "".join(lines[-30:]))
  assert "File too large" in lines[-1]
  assert lines[-1].rstrip().endswith("training stopped rather than run on unsaved; the last complete checkpoint "
                                     "is step 20")
  assert complete_steps(tmp_path) == [20]
  assert max(int(m.group(1)) for m in map(LOGGED.search, lines) if m) <= 50  # It stopped at once.


def test_ctrl_c_saves_the_step_reached_and_puts_the_handlers_back(tmp_path, monkeypatch, caplog, live_ctrl_c):
  handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  make_train_fn, calls, second_press = step_lib.make_train_fn, [], []

  def train_fn_that_is_interrupted(*args, **kwargs):
    train_fn = make_train_fn(*args, **kwargs)

    def call(*call_args, **call_kwargs):
      calls.append(1)
      if len(calls) == 2:  # During the second call: it still completes and is saved.
        os.kill(os.getpid(), signal.SIGINT)
        second_press.append(signal.getsignal(signal.SIGINT))
      return train_fn(*call_args, **call_kwargs)
    return call

  monkeypatch.setattr(step_lib, "make_train_fn", train_fn_that_is_interrupted)
  caplog.set_level(logging.INFO, logger="absl")
  config = tiny_config(steps_per_call=2, total_steps=40, log_every=40, save_every=40, sample_every=40)
  state = loop.train_and_evaluate(config, str(tmp_path))

  assert state["step"].tolist() == [4] and len(calls) == 2
  assert os.listdir(tmp_path / "checkpoints") == ["4"]  # Off the save_every grid.
  assert second_press == [handlers[signal.SIGINT]]  # A second Ctrl-C would have stopped at once.
  assert {s: signal.getsignal(s) for s in handlers} == handlers
  stopped = [m for m in map(STOPPED.search, caplog.messages) if m]
  assert [m.group(1, 2, 4) for m in stopped] == [("SIGINT", "4", "train again on the same workdir to resume")]
  saved = restore_on_one_device(tmp_path, 4)
  assert saved["step"].tolist() == [4]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(saved)))


class FakePreemptionService:
  """JAX's preemption sync as XLA implements it (tsl PreemptionSyncManager): each call
  reports a step; after a notice the sync point is one past the furthest step reported,
  and only a call with exactly that step answers True."""

  def __init__(self):
    self.reported, self.sync_point, self.enabled = [], None, True

  def reached_preemption_sync_point(self, step):
    if not self.enabled:
      raise RuntimeError("Preemption sync manager has not been initialized.")
    self.reported.append(step)
    return step == self.sync_point

  def notice(self):
    self.sync_point = max(self.reported) + 1


def test_an_ignored_signal_stays_ignored_and_the_other_still_stops(live_ctrl_c):
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # As `nohup` or a background job has it.
  sigterm = signal.getsignal(signal.SIGTERM)
  stop = loop.StopSignals(0)
  try:
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    signal.raise_signal(signal.SIGINT)
    assert not stop.requested(4, 4)
    signal.raise_signal(signal.SIGTERM)
    assert stop.requested(4, 4) and stop.reason == "SIGTERM"
  finally:
    stop.restore()
  assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is sigterm


def test_several_processes_stop_at_the_preemption_sync_point(monkeypatch, live_ctrl_c):
  service = FakePreemptionService()
  monkeypatch.setattr(multihost_utils, "reached_preemption_sync_point", service.reached_preemption_sync_point)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  forwarded = []
  monkeypatch.setattr(os, "kill", lambda pid, signum: forwarded.append((pid, signum)))
  sigterm = signal.getsignal(signal.SIGTERM)
  stop = loop.StopSignals(8)
  try:
    # SIGTERM stays with JAX's own handler; Ctrl-C is passed on to it as a SIGTERM.
    assert signal.getsignal(signal.SIGTERM) is sigterm
    signal.raise_signal(signal.SIGINT)
    assert forwarded == [(os.getpid(), signal.SIGTERM)]
    assert not stop.requested(12, 4)  # No notice yet, whatever this process received.
    service.notice()  # Sync point 13: inside the next call of 4 steps, 13 to 16.
    assert stop.requested(16, 4) and stop.reason == "JAX's preemption sync point"
    assert service.reported == [8, 9, 10, 11, 12, 13]
  finally:
    stop.restore()
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

  service.enabled = False  # jax_enable_preemption_service=False: no stop, no handlers.
  stop = loop.StopSignals(8)
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  assert not stop.requested(12, 4)


def test_nan_without_skipping_stops_before_a_nonfinite_checkpoint(tmp_path):
  config = tiny_config(total_steps=4, log_every=2, save_every=2, debug_nan_step=3)
  with pytest.raises(FloatingPointError, match=r"non-finite .* between steps 2 and 4; the last checkpoint is "
                     r"step 2; config.skip_nonfinite_updates=True skips such updates"):
    loop.train_and_evaluate(config, str(tmp_path))
  assert os.listdir(tmp_path / "checkpoints") == ["2"]
  saved = jax.device_get(restore_on_one_device(tmp_path, 2))
  assert saved["step"].tolist() == [2]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(saved))


def test_nan_with_skipping_leaves_that_step_out(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  # The update of step 3 (from 3 steps done to 4) is poisoned; every step is logged and saved.
  config = tiny_config(total_steps=4, log_every=1, save_every=1, keep=4, debug_nan_step=3,
                       skip_nonfinite_updates=True)
  final = jax.device_get(loop.train_and_evaluate(config, str(tmp_path)))
  assert final["step"].tolist() == [4]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(final))
  logged = {int(m.group(1)): dict(kv.split("=") for kv in m.group(2).split())
            for m in map(re.compile(r"^step (\d+): (.*)").search, caplog.messages) if m}
  assert [(logged[s]["d_skipped"], logged[s]["g_skipped"]) for s in (1, 2, 3, 4)] == [("0", "0")] * 3 + [("1", "1")]
  assert logged[4]["d_loss"] == "nan" and logged[3]["d_loss"] != "nan"  # The skipped update's own loss.
  assert ("Skipped 1 discriminator and 1 generator update(s) with non-finite losses or gradients between steps 3 "
          "and 4.") in caplog.messages

  # Step 3's updates were skipped: the state after it is the state before it, but for
  # the step count; the step before it did update.
  two, three, four = (jax.device_get(restore_on_one_device(tmp_path, s)) for s in (2, 3, 4))
  assert four["step"].tolist() == [4]
  for key in ("generator", "discriminator", "g_opt_state", "d_opt_state", "g_ema_params", "rng"):
    jax.tree.map(np.testing.assert_array_equal, four[key], three[key])
  assert not np.array_equal(jax.tree.leaves(two["generator"]["params"])[0],
                            jax.tree.leaves(three["generator"]["params"])[0])


def test_debug_nan_step_is_validated():
  with pytest.raises(ValueError, match=r"config.debug_nan_step=-2 must be -1 \(off\) or a step >= 0"):
    loop.validate_config(tiny_config(debug_nan_step=-2))
