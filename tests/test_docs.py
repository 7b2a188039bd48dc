"""Every train.py / eval.py command the documentation shows runs as far as its command line:
in README.md, docs/*.md and the configs' docstrings, the config file exists, its config
argument is accepted, every `--config.field` exists (`cli.check_config_args`), and every
other flag is one the script defines."""

import glob
import os
import re
import shlex

import pytest

from conftest import REPO
from gan_jax import cli

PAGES = sorted([os.path.join(REPO, "README.md"), *glob.glob(os.path.join(REPO, "docs", "*.md")),
                *glob.glob(os.path.join(REPO, "configs", "*.py"))])
# A command starts at `python train.py` (or python3, .venv/bin/python, ...) and ends at the
# end of its line, a closing backtick or a comment; `\` continues it on the next line.
COMMAND = re.compile(r"\bpython3?\s+(?P<script>train|eval)\.py(?P<args>[^`#\n]*)")


def documented_commands() -> list:
  return list(_commands())


def _commands():
  for page in PAGES:
    with open(page) as f:
      text = f.read().replace("\\\n", " ")
    for match in COMMAND.finditer(text):
      args = re.sub(r"\[[^\]]*\]", " ", match["args"])  # Optional arguments shown as [--flag=...].
      yield pytest.param(match["script"], shlex.split(args), id=f"{os.path.relpath(page, REPO)}:{match['script']}")


def defined_flags(script: str) -> set[str]:
  with open(os.path.join(REPO, f"{script}.py")) as f:
    return set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", f.read()))


def test_the_documentation_shows_commands():
  scripts = {param.values[0] for param in documented_commands()}
  assert scripts == {"train", "eval"}


@pytest.mark.parametrize("script, argv", documented_commands())
def test_documented_command_parses(script, argv):
  assert argv, f"python {script}.py without arguments"
  allowed = defined_flags(script)
  takes_value = False  # A token that is not a flag is the value of the flag before it (`--config FILE`).
  for arg in argv:
    if not arg.startswith("--"):
      assert takes_value, f"python {script}.py: {arg!r} is neither a flag nor a flag's value"
      takes_value = False
      continue
    name = re.match(r"--([\w]+)", arg)[1]
    assert name in allowed or name.removeprefix("no") in allowed, f"python {script}.py: {arg} is not a flag it defines"
    takes_value = "=" not in arg
  cwd = os.getcwd()
  os.chdir(REPO)
  try:
    cli.check_config_args(argv)
  finally:
    os.chdir(cwd)


def test_docs_configs_names_every_field_of_the_base_config_and_its_blocks():
  """Every field of configs/base.py, its optimizer blocks and the declared term blocks."""
  from configs import base  # pylint: disable=g-import-not-at-top
  from gan_jax import terms  # pylint: disable=g-import-not-at-top
  fields = _leaf_fields(base.get_config().to_dict())
  fields += [f"{place}.{path}" for place in ("g_optimizer", "d_optimizer") for path in _leaf_fields(base.optimizer())]
  fields += [f"{path}.{name}" for path in terms.BLOCKS for name in terms.block_config(path)]
  with open(os.path.join(REPO, "docs", "configs.md")) as f:
    page = f.read()
  missing = [field for field in fields if f"`{field}`" not in page]
  assert not missing, f"docs/configs.md lacks {missing}"


def _leaf_fields(tree: dict, prefix: str = "") -> list[str]:
  """The dotted names of a config's fields, blocks excluded."""
  return [field for key, value in tree.items()
          for field in (_leaf_fields(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])]


def test_readme_shows_the_commands_ci_runs():
  """`.ci/run` installs and tests as README says: each of its commands appears in README."""
  with open(os.path.join(REPO, ".ci", "run")) as f:
    commands = [line.split("#")[0].strip() for line in f if "README" in line and not line.startswith("#")]
  with open(os.path.join(REPO, "README.md")) as f:
    readme = f.read()
  # One installs the package with its test dependencies, one runs the suite.
  assert [("pip install" in c and '".[dev]"' in c, "-m pytest" in c) for c in commands] == [(True, False), (False, True)]
  for command in commands:
    assert command.replace("venv --clear", "venv") in readme, command
