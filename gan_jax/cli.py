"""Command-line checks for train.py: a mistake on the command line is one line that names it.

ml_collections' config flags report a missing config file, a file without `get_config`
or a misspelt `--config.field` with a traceback from inside its parser; `check_config_args`
finds the same mistakes first and says them in one line each.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re

import ml_collections

# --config=FILE[:ARG], --config FILE[:ARG], and the overrides --config.a.b=V, --noconfig.a.b.
_OVERRIDE = re.compile(r"^--(no)?(?P<name>[A-Za-z_]\w*)\.(?P<path>[^=]+)(=.*)?$")


class CommandLineError(ValueError):
  """A command line that cannot run; the message names the flag and what is allowed."""


def flag_value(argv: list[str], name: str) -> str | None:
  """The value of the last `--{name}` in `argv` (the one absl keeps), or None."""
  value = None
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}" and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def _first_line(e: BaseException) -> str:
  text = str(e).strip()
  return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def load_config_file(spec: str, flag: str = "--config") -> ml_collections.ConfigDict:
  """`get_config(ARG)` of the Python file in `FILE[:ARG]`, as ml_collections' config flag does."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise CommandLineError(f"{flag}={spec}: {path} is not a file; allowed: a Python file defining get_config(), "
                           "e.g. configs/mnist_dcgan.py")
  module_spec = importlib.util.spec_from_file_location("_checked_config", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # A config file that does not import: say why, in its words.
    raise CommandLineError(f"{flag}={spec}: {path} fails to import: {_first_line(e)}") from None
  if not callable(getattr(module, "get_config", None)):
    raise CommandLineError(f"{flag}={spec}: {path} defines no get_config(); a config file must")
  try:
    config = module.get_config(*([arg] if arg else []))
  except ValueError as e:  # A refused argument: its message says what is allowed.
    raise CommandLineError(f"{flag}={spec}: {str(e).strip().splitlines()[0] if str(e).strip() else 'ValueError'}") from None
  except Exception as e:  # Any other failure of get_config, said in one line too.
    raise CommandLineError(f"{flag}={spec}: get_config() failed: {_first_line(e)}") from None
  return config


def _leaf_paths(node, prefix: str = "") -> list[str]:
  if isinstance(node, (ml_collections.ConfigDict, dict)):
    return [p for key in node.keys() for p in [f"{prefix}{key}", *_leaf_paths(node[key], f"{prefix}{key}.")]]
  return []


def _has_path(config, path: str) -> bool:
  node = config
  for part in path.split("."):
    if isinstance(node, (ml_collections.ConfigDict, dict)) and part in node:
      node = node[part]
    elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
      node = node[int(part)]
    else:
      return False
  return True


def check_config_args(argv: list[str], name: str = "config") -> None:
  """Raises CommandLineError for the first problem of `--{name}` and its overrides in `argv`:
  a file that is missing, does not import or has no `get_config`, a `get_config` argument
  it refuses, or an override naming a field the config does not have (with the nearest
  fields). Does nothing when `--{name}` is absent (the flag parser says that it is required)."""
  spec = flag_value(argv, name)
  if spec is None:
    return
  config = load_config_file(spec, f"--{name}")
  for arg in argv:
    match = _OVERRIDE.match(arg)
    if not match or match["name"] != name or _has_path(config, match["path"]):
      continue
    close = difflib.get_close_matches(match["path"], _leaf_paths(config), n=3, cutoff=0.8)
    hint = f"; did you mean {', '.join(f'--{name}.{c}' for c in close)}?" if close else ""
    raise CommandLineError(f"--{name}.{match['path']}: {spec.partition(':')[0]} has no field "
                           f"{match['path']}{hint}")


def check_workdir(workdir: str, flag: str = "--workdir") -> None:
  """CommandLineError, in one line, where `workdir` cannot be a directory that train.py writes:
  a file is there or in the place of one of its parents, or the directory it is (or would be
  made in) is not writable. Creates nothing: the config is checked first. Paths with a scheme
  (gs://...) are left to the filesystem library that writes them."""
  if "://" in workdir:
    return
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    reason = "a file" if existing == os.path.abspath(workdir) else f"{existing} is a file"
  elif not os.access(existing, os.W_OK | os.X_OK):
    reason = f"{existing} is not writable"
  else:
    return
  raise CommandLineError(f"{flag}={workdir}: cannot be used as a directory ({reason}); allowed: an existing "
                         "directory or a path where one can be made")
