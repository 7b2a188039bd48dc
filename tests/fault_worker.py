"""train.py with a fault injected at one checkpoint save, for tests/test_faults.py.

  python tests/fault_worker.py FAULT STEP [train.py flags...]

FAULT is one of
  kill       SIGKILL this process as soon as the save of STEP has started: Orbax is then
             still writing it, under its temporary name.
  disk_full  from the save of STEP on, no file may grow (RLIMIT_FSIZE 0, SIGXFSZ ignored):
             every write of a file fails with EFBIG, as on a full disk, also inside TensorStore.
"""

import os
import resource
import signal
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app  # pylint: disable=g-import-not-at-top

from gan_jax import checkpoints  # pylint: disable=g-import-not-at-top
import train  # pylint: disable=g-import-not-at-top


def main():
  fault, fault_step = sys.argv[1], int(sys.argv[2])
  if fault not in ("kill", "disk_full"):
    sys.exit(f"fault_worker.py: FAULT={fault!r}; allowed: kill, disk_full")
  save = checkpoints.save

  def faulty_save(manager, step, state):
    if fault == "disk_full" and step == fault_step:
      checkpoints.wait(manager)  # The earlier checkpoints complete: the disk fills at this one.
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
      resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    save(manager, step, state)
    if fault == "disk_full" and step == fault_step:
      time.sleep(1)  # Until the write in the background has failed: the next log step finds it.
    if fault == "kill" and step == fault_step:
      os.kill(os.getpid(), signal.SIGKILL)

  checkpoints.save = faulty_save
  sys.argv = [os.path.join(REPO, "train.py"), *sys.argv[3:]]
  app.run(train.main, flags_parser=train._parse_flags)  # pylint: disable=protected-access


if __name__ == "__main__":
  main()
