"""The numerics contract: every committed config trains to its recorded fingerprint
(`fingerprint.py`, `fingerprints.json`), on any x86 CPU."""

import json
import os

import numpy as np
import pytest

import fingerprint

with open(fingerprint.PATH) as f:
  RECORDED = json.load(f)
# The committed configs at their full size take minutes on a 2-core CPU: run them with
# GAN_JAX_FULL_FINGERPRINTS=1; the suite checks the same configs with narrow networks.
FULL = os.environ.get("GAN_JAX_FULL_FINGERPRINTS") == "1"
# Rounding differences (fully optimised against the suite's compile: a proxy for another CPU)
# moved the metrics of steps 1 and 2 by at most 3e-7 and those of step 3 by up to 3.3e-5, as
# each update amplifies them; a term's weight off by 1% moves a loss by 1e-2.
RTOLS, ATOL = (1e-4, 1e-4, 1e-3), 1e-6


@pytest.mark.parametrize("size", [
    "tiny", pytest.param("full", marks=pytest.mark.skipif(not FULL, reason="GAN_JAX_FULL_FINGERPRINTS=1 runs it"))])
@pytest.mark.parametrize("spec", fingerprint.CONFIGS)
def test_config_trains_to_its_recorded_fingerprint(spec, size):
  got, want = fingerprint.trace(fingerprint.fingerprint_config(spec, size)), RECORDED[size][spec]
  assert [sorted(step) for step in got["steps"]] == [sorted(step) for step in want["steps"]], (
      f"{spec}: the step's metrics changed")
  for step, (got_step, want_step, rtol) in enumerate(zip(got["steps"], want["steps"], RTOLS)):
    for name, value in want_step.items():
      np.testing.assert_allclose(got_step[name], value, rtol=rtol, atol=ATOL, err_msg=f"{spec} step {step + 1} {name}")
  np.testing.assert_allclose(got["refit"], want["refit"], rtol=RTOLS[-1], atol=ATOL, err_msg=f"{spec} refit")
