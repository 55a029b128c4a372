"""Behaviour is pinned: 20 steps of the three runlocal configs reproduce recorded losses.

The values in tests/golden/losses_20_steps.json were recorded at fecbdf3 (before the
issue-16 refactors) with `python -m tests.golden_losses --write`; on the machine that
recorded them the refactored code reproduces them bit for bit (`--check`). Here the
tolerance allows another CPU's float rounding, far below what any change of a loss term,
an init or the data order does (those move step-20 losses by > 1e-2).
"""
import json

import numpy as np

from tests import golden_losses


def test_runlocal_losses_match_golden(fmnist_data_dir, tmp_path):
  golden = json.loads(golden_losses.GOLDEN_PATH.read_text())
  losses = golden_losses.run_all(fmnist_data_dir, str(tmp_path))
  assert sorted(losses) == sorted(golden)
  for name, values in golden.items():
    assert len(losses[name]) == golden_losses.NUM_STEPS, name
    np.testing.assert_allclose(losses[name], values, rtol=1e-4, err_msg=name)
