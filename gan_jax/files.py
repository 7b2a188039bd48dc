"""Atomic file writes: a kill never leaves a truncated PNG or JSON behind."""

import json
import os
import tempfile


def write_atomic(path: str, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it over `path`."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared.
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def write_json(path: str, obj) -> None:
  write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def safe_name(name: str) -> str:
  """`name` (e.g. a split like `mnist_5k:train[:90%]`) as one file-name component."""
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
