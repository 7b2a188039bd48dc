r"""Runs train.py and eval.py on each bad input of issue 7 and on the faults shown from the
command line, and reports what each said: exit status, its last line, and whether the
workdir it was given changed.

  python benchmarks/bad_inputs.py [--out=bad_inputs.md]

Each case is a real command in a scratch directory (a tiny model, a few steps); nothing
is mocked. About 3 minutes on a 2-core CPU.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config=configs/mnist_dcgan.py", "--config.model.latent_dim=16", "--config.model.generator_features=8",
        "--config.model.discriminator_features=8", "--config.batch_size=8", "--config.steps_per_call=1",
        "--config.log_every=2", "--config.save_every=2", "--config.sample_every=2", "--config.num_samples=4",
        "--config.eval_every=0", "--config.total_steps=4"]


def snapshot(path):
  if not os.path.isdir(path):
    return None
  return {os.path.relpath(os.path.join(d, f), path): open(os.path.join(d, f), "rb").read()
          for d, _, names in os.walk(path) for f in names}


def run(args, env=None, signum=None):
  cmd = [sys.executable, *args]
  env = {**os.environ, **(env or {})}
  if signum is None:
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    return result.returncode, result.stderr
  proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
  lines = []
  for line in proc.stderr:
    lines.append(line)
    if "First call (compilation included)" in line:
      time.sleep(0.5)
      proc.send_signal(signum)
  proc.wait()
  return proc.returncode, "".join(lines)


def last_line(text, contains=None):
  lines = [l for l in text.strip().splitlines() if l.strip()]
  if contains:
    lines = [l for l in lines if contains in l] or lines
  line = lines[-1] if lines else ""
  return line.split("] ", 1)[1] if line.startswith(("I1", "W1", "E1")) and "] " in line else line


def prepare_inputs(p):
  """The spoilt runs, image folders and config files of the cases, in the scratch directory `p(...)`."""
  # A run to spoil: 4 steps, checkpoints 2 and 4.
  code, err = run(["train.py", f"--workdir={p('run')}", *TINY])
  assert code == 0, err[-2000:]
  for name in ("conflict", "architecture", "garbled", "empty_step"):
    shutil.copytree(p("run"), p(name))
  os.remove(p("architecture", "config.json"))
  for d, _, names in os.walk(p("garbled", "checkpoints", "4")):
    for name in names:
      if os.path.basename(d) == "d":
        with open(os.path.join(d, name), "wb") as f:
          f.write(b"garbage")
  shutil.rmtree(p("empty_step", "checkpoints", "4"))
  os.makedirs(p("empty_step", "checkpoints", "4"))
  os.makedirs(p("folder_empty"))
  os.makedirs(p("folder_flat"))
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(p("folder_flat", "digit.png"))  # No class folder.
  os.makedirs(p("folder_broken", "zero"))
  with open(p("folder_broken", "zero", "broken.png"), "wb") as f:
    f.write(b"not a png")
  with open(p("no_get_config.py"), "w") as f:
    f.write("x = 1\n")
  with open(p("nan_config.py"), "w") as f:  # debug_nan_step is an optional field: a config file sets it.
    f.write("from configs import mnist_dcgan\n\n\ndef get_config(arg=None):\n"
            "  config = mnist_dcgan.get_config(arg)\n  config.debug_nan_step = 3\n  return config\n")
  os.makedirs(p("not_a_run"))
  os.makedirs(p("holds_a_file"))
  with open(p("holds_a_file", "a_file"), "w") as f:
    f.write("x\n")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", help="also write the Markdown table here")
  args = parser.parse_args()
  scratch = tempfile.mkdtemp(prefix="bad_inputs_")
  p = lambda *parts: os.path.join(scratch, *parts)

  prepare_inputs(p)

  train = lambda workdir, *flags: ["train.py", f"--workdir={p(workdir)}", *TINY, *flags]
  folder = lambda d: ["--config.data.name=image_folder", f"--config.data.data_dir={p(d)}", "--config.data.resize=resize"]
  cases = [
      ("unknown dataset", train("new", "--config.data.name=cifar11"), "new"),
      ("unknown model", train("new", "--config.model.name=dcgann"), "new"),
      ("unknown loss", train("new", "--config.loss=hinged"), "new"),
      ("unknown optimizer", train("new", "--config.g_optimizer.name=sgd"), "new"),
      ("zero batch size", train("new", "--config.batch_size=0"), "new"),
      ("negative steps", train("new", "--config.total_steps=-5"), "new"),
      ("negative learning rate", train("new", "--config.d_optimizer.learning_rate=-1e-4"), "new"),
      ("batch not divisible by the 8 devices",
       (train("new", "--config.batch_size=12"), {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}), "new"),
      ("image size the model cannot produce", train("new", "--config.image_size=30"), "new"),
      ("typo'd config field", train("new", "--config.totl_steps=5"), "new"),
      ("`--workdir` where a file is", train(os.path.join("holds_a_file", "a_file")), "holds_a_file"),
      ("config file that does not exist", ["train.py", f"--workdir={p('new')}", "--config=configs/nope.py"], "new"),
      ("config file without get_config", ["train.py", f"--workdir={p('new')}", f"--config={p('no_get_config.py')}"],
       "new"),
      ("workdir whose config changes shapes", train("conflict", "--config.model.discriminator_features=16",
                                                    "--config.total_steps=6"), "conflict"),
      ("checkpoint of another architecture (no config.json)",
       train("architecture", "--config.model.generator_features=16"), "architecture"),
      ("corrupted checkpoint", train("garbled", "--config.total_steps=6"), "garbled"),
      ("empty checkpoint directory", train("empty_step", "--config.total_steps=6"), "empty_step"),
      ("empty image folder", train("new", *folder("folder_empty")), "new"),
      ("image folder without class subfolders", train("new", *folder("folder_flat")), "new"),
      ("image folder with an unreadable file", train("new", *folder("folder_broken")), "new"),
      ("eval.py on a workdir with no checkpoint", ["eval.py", f"--workdir={p('not_a_run')}"], "not_a_run"),
      ("eval.py on a step that is not saved", ["eval.py", f"--workdir={p('run')}", "--step=3"], "run"),
  ]
  rows = []
  for name, command, workdir in cases:
    command, env = command if isinstance(command, tuple) else (command, None)
    before = snapshot(p(workdir))
    code, err = run(command, env)
    after = snapshot(p(workdir))
    if before is None:
      unchanged = "new: nothing written" if after is None else "new: MADE IT" if not after else "new: WROTE FILES"
    elif before == {}:
      unchanged = "new: nothing written" if not after else "new: WROTE FILES"
    else:
      unchanged = "unchanged" if before == after else "CHANGED"
    rows.append((name, code, last_line(err), unchanged))
    print(f"{name}: exit {code}: {last_line(err)}", flush=True)

  # Faults from the command line: a NaN at step 3 (a test-only knob), and SIGTERM.
  shutil.rmtree(p("new"), ignore_errors=True)
  code, err = run(["train.py", f"--workdir={p('nan')}", f"--config={p('nan_config.py')}", *TINY[1:]])
  rows.append(("NaN in the loss at step 3 (config.debug_nan_step=3)", code, last_line(err),
               f"checkpoints {sorted(os.listdir(p('nan', 'checkpoints')))}"))
  code, err = run(train("sigterm", "--config.total_steps=2000", "--config.save_every=1000", "--config.log_every=1000",
                        "--config.sample_every=1000"), signum=signal.SIGTERM)
  rows.append(("SIGTERM during training", code, last_line(err, "Stopped by"),
               f"checkpoints {sorted(os.listdir(p('sigterm', 'checkpoints')), key=int)}"))
  for name, code, line, state in rows[-2:]:
    print(f"{name}: exit {code}: {line}", flush=True)

  table = ["| input | exit status | message (last line) | workdir afterwards |", "|---|---|---|---|"]
  table += [f"| {n} | {c} | `{l.replace('|', '/')}` | {s} |" for n, c, l, s in rows]
  text = "\n".join(table).replace(scratch, "$TMP").replace(sys.executable, "python").replace(REPO + os.sep, "") + "\n"
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)
  shutil.rmtree(scratch)


if __name__ == "__main__":
  main()
