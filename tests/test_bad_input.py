"""Bad input: each mistake is one error that names the field and what is allowed, and
nothing already in the workdir is overwritten or deleted.

Elsewhere: an unknown or offline dataset and bad image folders (test_data.py), a batch the
devices cannot divide (test_parallel.py), eval.py's flags and a workdir without a run
(test_eval.py), a typo'd field through train.py itself (test_train_cli.py).
"""

import json
import os
import re
import shutil
import sys
import types

import jax
import numpy as np
from PIL import Image
import pytest

from configs import base
from conftest import REPO, initial_population, tiny_config
from gan_jax import checkpoints
from gan_jax import cli
from gan_jax import loop
from gan_jax import population
from gan_jax import resume
from gan_jax import state as state_lib


@pytest.mark.parametrize("field,value,message", [
    ("model.name", "dcgann", r"config.model.name='dcgann' is not a model; allowed: dcgan, resnet$"),
    ("adversarial.loss", "hinged", r"config.adversarial.loss='hinged'; allowed: non_saturating, hinge, wasserstein"),
    ("d_optimizer.weight_decay", -0.1, r"config.d_optimizer.weight_decay=-0.1 must be >= 0 \(0: Adam; > 0: AdamW\)"),
    ("total_steps", 0, r"config.total_steps=0 must be positive"),
    ("batch_size", 0, r"config.batch_size=0 must be positive"),
    ("model.latent_dim", -3, r"config.model.latent_dim=-3 must be positive"),
    ("g_optimizer.learning_rate", -1e-4, r"config.g_optimizer.learning_rate=-0.0001 must be positive"),
    ("image_size", 30, r"config.image_size=30 cannot be produced by the dcgan model; allowed: 28, 32, 64"),
    ("channels", 2, r"config.channels=2; allowed: 1, 3"),
])
def test_bad_config_values_name_the_field_and_what_is_allowed(field, value, message):
  with pytest.raises(ValueError, match=message):
    loop.validate_config(tiny_config(**{field: value}))


def test_config_file_mistakes_are_one_line(tmp_path):
  (tmp_path / "no_get_config.py").write_text("x = 1\n")
  (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
  cases = {
      ("--config=configs/nope.py",):
          "--config=configs/nope.py: configs/nope.py is not a file; allowed: a Python file defining get_config(), "
          "e.g. configs/mnist_dcgan.py",
      (f"--config={tmp_path}/no_get_config.py",):
          f"--config={tmp_path}/no_get_config.py: {tmp_path}/no_get_config.py defines no get_config(); "
          "a config file must",
      ("--config", f"{tmp_path}/broken.py"):
          f"--config={tmp_path}/broken.py: {tmp_path}/broken.py fails to import: ModuleNotFoundError: "
          "No module named 'nonexistent_module_xyz'",
      ("--config=configs/mnist_dcgan.py:bogus",):
          "--config=configs/mnist_dcgan.py:bogus: config argument 'bogus'; allowed: runlocal, rotation, ablations",
      ("--config=configs/mnist_dcgan.py", "--config.totl_steps=5"):
          "--config.totl_steps: configs/mnist_dcgan.py has no field totl_steps; did you mean --config.total_steps?",
      ("--config=configs/mnist_dcgan.py", "--noconfig.data.downlaod"):
          "--config.data.downlaod: configs/mnist_dcgan.py has no field data.downlaod; did you mean "
          "--config.data.download?",
  }
  cwd = os.getcwd()
  os.chdir(REPO)
  try:
    for argv, message in cases.items():
      with pytest.raises(cli.CommandLineError) as info:
        cli.check_config_args(list(argv))
      assert str(info.value) == message
    # Fields that exist, nested ones and a get_config argument pass.
    cli.check_config_args(["--config=configs/mnist_dcgan.py:runlocal", "--config.model.latent_dim=8",
                           "--noconfig.data.download", "--workdir=/tmp/x"])
  finally:
    os.chdir(cwd)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
  """A workdir of the tiny config with (initial) train states saved at steps 2 and 4, and its config.json."""
  workdir = tmp_path_factory.mktemp("saved_run")
  config = tiny_config()
  _, state = initial_population(config)
  manager = checkpoints.make_manager(str(workdir), keep=5, asynchronous=False)
  for step in (2, 4):
    checkpoints.save(manager, step, state)
  manager.close()
  (workdir / "config.json").write_text(json.dumps(config.to_dict()))
  return workdir


def snapshot(workdir):
  """Every file under `workdir` with its bytes: to show that nothing changed."""
  return {os.path.relpath(os.path.join(d, f), workdir): open(os.path.join(d, f), "rb").read()
          for d, _, names in os.walk(workdir) for f in names}


def copy_of(saved_run, tmp_path):
  shutil.copytree(saved_run, tmp_path / "run")
  return tmp_path / "run"


def test_a_config_that_changes_the_state_shapes_is_refused_naming_the_fields(saved_run, tmp_path):
  workdir = copy_of(saved_run, tmp_path)
  before = snapshot(workdir)
  # total_steps and a learning rate keep the shapes: only the width is named.
  config = tiny_config(total_steps=10, **{"model.discriminator_features": 16, "d_optimizer.learning_rate": 1e-3})
  with pytest.raises(ValueError) as info:
    loop.train_and_evaluate(config, str(workdir))
  message = str(info.value)
  assert message.startswith(f"{workdir / 'checkpoints' / '4'} is a checkpoint of another train state than this "
                            "config makes: config.model.discriminator_features=16 (saved: 8) changes its shapes ("), message
  assert "(24 arrays differ, e.g. discriminator/params/conv1/bias is float32[1, 8] in the checkpoint, float32[1, 16] here)" in message
  assert message.endswith("resume with the saved values, or train in a new workdir; fields that keep the shapes, "
                          "like total_steps, may change")
  assert "total_steps" not in message.split("here")[0] and "learning_rate" not in message
  assert snapshot(workdir) == before  # config.json included: nothing was written.

  manager = checkpoints.make_manager(str(workdir), keep=5, read_only=True)
  try:
    abstract = lambda c: jax.eval_shape(lambda: population.init_state(state_lib.make_gan(c), c))
    two = tiny_config(**{"model.latent_dim": 8})
    two.infogan = base.block("infogan")  # A term switched on: its block is named as one change.
    with pytest.raises(ValueError, match=r"config.infogan \(a block the saved config lacks\) and "
                       r"config.model.latent_dim=8 \(saved: 16\) change its shapes \(\d+ arrays differ, e.g. "):
      resume.check_resumable(two, str(workdir), manager, 4, abstract(two))
    # Without the run's config.json (a checkpoint of another architecture copied in, say),
    # the first array that differs is named.
    os.remove(workdir / "config.json")
    other = tiny_config(**{"model.generator_features": 4})
    with pytest.raises(ValueError, match=r"another train state than this config makes: 50 arrays differ, e.g. "
                       r"g_ema_params/project/bias is float32\[1, 1568\] in the checkpoint, float32\[1, 784\] here;"):
      resume.check_resumable(other, str(workdir), manager, 4, abstract(other))
  finally:
    manager.close()


def test_fields_that_keep_the_shapes_may_change_and_are_logged(saved_run, tmp_path, caplog):
  workdir = copy_of(saved_run, tmp_path)
  config = tiny_config(total_steps=10, **{"d_optimizer.learning_rate": 1e-3})
  manager = checkpoints.make_manager(str(workdir), keep=5, read_only=True)
  caplog.set_level("INFO", logger="absl")
  try:
    resume.check_resumable(config, str(workdir), manager, 4,
                             jax.eval_shape(lambda: population.init_state(state_lib.make_gan(config), config)))
  finally:
    manager.close()
  assert (f"Resuming with fields changed since {workdir / 'config.json'}: d_optimizer.learning_rate 0.0002 -> 0.001; "
          "total_steps 4 -> 10.") in caplog.messages


@pytest.mark.parametrize("damage", ["garbled", "empty"])
def test_a_corrupted_checkpoint_is_named_and_left_in_place(saved_run, tmp_path, damage, monkeypatch):
  workdir = copy_of(saved_run, tmp_path)
  latest = workdir / "checkpoints" / "4"
  if damage == "garbled":  # Every data file of step 4 overwritten.
    for d, _, names in os.walk(latest):
      for name in names:
        if os.path.basename(d) == "d":
          with open(os.path.join(d, name), "wb") as f:
            f.write(b"garbage")
  else:  # An empty directory where step 4 should be.
    shutil.rmtree(latest)
    os.makedirs(latest)
  before = snapshot(workdir)
  unraisable = []
  monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
  with pytest.raises(checkpoints.CheckpointError) as info:
    loop.train_and_evaluate(tiny_config(), str(workdir))
  message = str(info.value)
  assert message.startswith(f"the checkpoint {latest} cannot be read ("), message
  assert message.endswith(f"); to train on, move it out of {workdir / 'checkpoints'} to resume from step 2, or "
                          "train in a new workdir")
  if damage == "empty":
    assert "(the directory is empty)" in message
  reason = message[message.index("cannot be read (") + 16:message.rindex("); to train on")]
  assert len(reason) <= 160, reason  # TensorStore's first line, a kilobyte of JSON, is cut.
  if damage == "garbled":
    assert reason.endswith("..."), reason
    # TensorStore's reads still in flight call back into Orbax's closed event loop, before and
    # after the error: those errors are dropped, not printed around the one line; others pass on.
    for error in (RuntimeError("Event loop is closed"), RuntimeError("another")):
      sys.unraisablehook(types.SimpleNamespace(exc_type=type(error), exc_value=error, exc_traceback=None,
                                               err_msg=None, object=None))
    assert [str(u.exc_value) for u in unraisable] == ["another"]
  assert snapshot(workdir) == before and os.path.isdir(latest)


def test_only_gan_jax_own_errors_become_one_line(tmp_path):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import train  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError) as ours:
    loop.validate_config(tiny_config(batch_size=0))
  assert train._raised_by_gan_jax(ours.value)  # pylint: disable=protected-access
  # A failure under jax.jit keeps its traceback, even where the last frame JAX leaves
  # visible is gan_jax's (here a bug-like unpacking error in a gan_jax function).
  from gan_jax.evaluation import features  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError) as theirs:
    jax.jit(features.adaptive_max_pool)(jnp.ones(3))
  assert "gan_jax" in theirs.traceback[-1].path.parts  # What the old check went by.
  assert not train._raised_by_gan_jax(theirs.value)  # pylint: disable=protected-access


def test_config_flag_edge_cases(tmp_path):
  (tmp_path / "raises.py").write_text("def get_config():\n  raise KeyError('model')\n")
  with pytest.raises(cli.CommandLineError, match=r"^--config=\S+raises.py: get_config\(\) failed: KeyError: 'model'$"):
    cli.check_config_args([f"--config={tmp_path}/raises.py"])
  # As absl does, the last --config counts: an override valid for it passes.
  (tmp_path / "other.py").write_text("import ml_collections\n"
                                     "def get_config():\n  return ml_collections.ConfigDict({'only_here': 1})\n")
  cli.check_config_args([f"--config={REPO}/configs/mnist_dcgan.py", f"--config={tmp_path}/other.py",
                         "--config.only_here=2"])


def test_a_workdir_that_cannot_be_a_directory_is_one_line(tmp_path):
  (tmp_path / "a_file").write_text("x")
  for workdir, reason in ((tmp_path / "a_file", "a file"), (tmp_path / "a_file" / "run", f"{tmp_path / 'a_file'} is a file")):
    with pytest.raises(cli.CommandLineError) as info:
      cli.check_workdir(str(workdir))
    assert str(info.value) == (f"--workdir={workdir}: cannot be used as a directory ({reason}); allowed: an existing "
                               "directory or a path where one can be made")
  assert (tmp_path / "a_file").read_text() == "x"
  for workdir in (tmp_path, tmp_path / "new" / "run", "gs://bucket/run"):  # Usable: nothing is made yet.
    cli.check_workdir(str(workdir))
  assert not (tmp_path / "new").exists()


def test_a_dataset_that_cannot_be_loaded_leaves_no_workdir(tmp_path):
  with pytest.raises(ValueError, match=r"config.data.name='cifar11' is not a tensorflow-datasets dataset"):
    loop.train_and_evaluate(tiny_config(**{"data.name": "cifar11"}), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_an_image_folder_without_class_subfolders_leaves_no_workdir(tmp_path):
  folder = tmp_path / "flat"
  folder.mkdir()
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "digit.png")  # Images at the top, no class folder.
  config = tiny_config(**{"data.name": "image_folder", "data.data_dir": str(folder)})
  with pytest.raises(ValueError, match="^" + re.escape(f"image folder {folder} has no class subfolders (expected "
                                                       f"{folder}/<class>/<image>)") + "$"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
