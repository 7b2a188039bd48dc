r"""kill -9 at many moments, then the same command each time: does the run end where an
uninterrupted one does?

  python benchmarks/kill_resume.py [--kills=8] [--mid_save=3] [--seed=0]

A tiny model trains for 1,000 steps (checkpoints every 50). `--mid_save` of the kills hit
the middle of a checkpoint write (tests/fault_worker.py kills the process right after
Orbax has started writing a step, under its temporary name); the others come at a random
moment 0-2 s after the training loop starts. After each kill the same command runs again;
the script checks that it resumed from the newest complete checkpoint (never a partial
one) and that at most save_every steps were lost. At the end the train state at step
1,000 is compared leaf by leaf with a run that was never interrupted. About 5 minutes on
a 2-core CPU.
"""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

from conftest import tiny_config  # pylint: disable=g-import-not-at-top
from gan_jax import checkpoints  # pylint: disable=g-import-not-at-top
from gan_jax import parallel  # pylint: disable=g-import-not-at-top
from gan_jax import state as state_lib  # pylint: disable=g-import-not-at-top

TOTAL, SAVE_EVERY = 1000, 50
FLAGS = ["--config=configs/mnist_dcgan.py", "--config.model.latent_dim=16", "--config.model.generator_features=8",
         "--config.model.discriminator_features=8", "--config.batch_size=8", "--config.steps_per_call=1",
         "--config.num_samples=4", "--config.eval_every=0", f"--config.total_steps={TOTAL}",
         f"--config.save_every={SAVE_EVERY}", f"--config.log_every={SAVE_EVERY}", "--config.sample_every=100000"]
RESUMED = re.compile(r"Resumed from \S+ at step (\d+)\.")
LOGGED = re.compile(r"\] step (\d+): ")


def complete_steps(workdir):
  directory = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if os.path.isdir(directory) else []


def run(workdir, script=("train.py",), kill_after=None):
  proc = subprocess.Popen([sys.executable, *script, f"--workdir={workdir}", *FLAGS], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  timers = []
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if kill_after is not None and "First call (compilation included)" in line:
      timers.append(threading.Timer(kill_after, proc.kill))
      timers[-1].start()
  proc.wait()
  for t in timers:
    t.cancel()
  resumed = [int(m.group(1)) for m in map(RESUMED.search, lines) if m]
  logged = [int(m.group(1)) for m in map(LOGGED.search, lines) if m]
  return proc.returncode, resumed[0] if resumed else None, max(logged, default=None), lines


def final_state(workdir):
  config = tiny_config()
  gan = state_lib.make_gan(config)
  abstract = checkpoints.abstract_like(jax.eval_shape(lambda: state_lib.init_state(gan, config)),
                                       parallel.replicated(parallel.make_mesh()))
  manager = checkpoints.make_manager(workdir, keep=3, read_only=True)
  try:
    return jax.device_get(checkpoints.restore(manager, abstract, TOTAL))
  finally:
    manager.close()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--kills", type=int, default=8)
  parser.add_argument("--mid_save", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  rng = random.Random(args.seed)
  scratch = tempfile.mkdtemp(prefix="kill_resume_")
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(scratch, "jax_cache"))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  workdir = os.path.join(scratch, "interrupted")
  kinds = ["mid_save"] * args.mid_save + ["random"] * (args.kills - args.mid_save)
  rng.shuffle(kinds)
  survived = 0
  for i, kind in enumerate(kinds):
    before = complete_steps(workdir)
    if kind == "mid_save":  # The next save after the newest complete checkpoint.
      step = (before[-1] if before else 0) + SAVE_EVERY
      code, resumed, logged, lines = run(workdir, ("tests/fault_worker.py", "kill", str(step)))
      partial = [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.startswith(f"{step}.")]
      what = f"during the save of step {step} (partial directory left: {partial[0] if partial else 'none'})"
    else:
      delay = rng.uniform(0.0, 2.0)
      code, resumed, logged, lines = run(workdir, kill_after=delay)
      what = f"{delay:.2f} s into the loop"
    after = complete_steps(workdir)
    ok = (code == -signal.SIGKILL and resumed == (before[-1] if before else None)
          and (logged is None or (after[-1] if after else 0) >= logged - SAVE_EVERY))
    survived += ok
    print(f"kill {i + 1} {what}: exit {code}, resumed from {resumed}, last logged step {logged}, "
          f"newest complete checkpoint afterwards {after[-1] if after else None}: {'ok' if ok else 'FAILED'}",
          flush=True)
  code, resumed, _, lines = run(workdir)
  assert code == 0, "".join(lines[-20:])
  print(f"final run: resumed from {resumed}, finished at {complete_steps(workdir)[-1]}")
  code, _, _, lines = run(os.path.join(scratch, "straight"))
  assert code == 0, "".join(lines[-20:])
  a, b = final_state(workdir), final_state(os.path.join(scratch, "straight"))
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  equal = sum(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))
  print(f"{survived} of {len(kinds)} kills survived ({args.mid_save} mid-save); step {TOTAL}: {equal} of "
        f"{len(leaves_a)} arrays of the train state bit-identical to the uninterrupted run")
  shutil.rmtree(scratch)


if __name__ == "__main__":
  main()
