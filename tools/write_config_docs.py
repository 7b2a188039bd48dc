"""Writes docs/configs.md's section on the loss-term blocks from their declarations in
gan_jax/terms/ (`terms.docs_tables`); tests/terms/test_registry.py fails when it is out of date.

  python tools/write_config_docs.py
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gan_jax import terms  # noqa: E402

PAGE = os.path.join(REPO, "docs", "configs.md")
BEGIN = "<!-- The term blocks below are written by tools/write_config_docs.py from gan_jax/terms/. -->\n"
END = "<!-- End of the term blocks. -->\n"


def section(page: str) -> str:
  """The text between the markers of `page`."""
  return page.split(BEGIN, 1)[1].split(END, 1)[0]


def main():
  with open(PAGE) as f:
    page = f.read()
  head, rest = page.split(BEGIN, 1)
  with open(PAGE, "w") as f:
    f.write(head + BEGIN + terms.docs_tables() + END + rest.split(END, 1)[1])


if __name__ == "__main__":
  main()
