"""The numerics contract: every committed config trains to the fingerprints recorded before the
refactor of the update step (`fingerprint.py`, `fingerprints.json`)."""

import json
import os

import numpy as np
import pytest

import fingerprint

with open(fingerprint.PATH) as f:
  RECORDED = json.load(f)
# The committed configs at their full size take 12 min on a 2-core CPU: run them with
# GAN_JAX_FULL_FINGERPRINTS=1; the suite checks the same configs with narrow networks.
FULL = os.environ.get("GAN_JAX_FULL_FINGERPRINTS") == "1"
RTOL = 1e-5


@pytest.mark.parametrize("size", [
    "tiny", pytest.param("full", marks=pytest.mark.skipif(not FULL, reason="GAN_JAX_FULL_FINGERPRINTS=1 runs it"))])
@pytest.mark.parametrize("spec", fingerprint.CONFIGS)
def test_config_trains_to_its_recorded_fingerprint(spec, size):
  got = fingerprint.fingerprint(fingerprint.train_params(fingerprint.fingerprint_config(spec, size)))
  want = RECORDED[size][spec]
  assert sorted(got) == sorted(want), f"{spec}: the params' leaves changed"
  for leaf, (total, squares, absolute) in want.items():
    got_total, got_squares, got_absolute = got[leaf]
    # A leaf's sum may be near 0: it is held to RTOL of the sum of absolute values.
    assert abs(got_total - total) <= RTOL * absolute, f"{spec} {leaf}: sum {got_total} vs {total}"
    np.testing.assert_allclose([got_squares, got_absolute], [squares, absolute], rtol=RTOL, err_msg=f"{spec} {leaf}")
