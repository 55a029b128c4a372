"""benchmarks/generator.py: a tokenizer config stands in for a trained run; an aligner-stage
config decodes through that stage's (larger) aligner."""
import argparse
import os
import sys

import jax
import numpy as np

from sbt_jax import sharding

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'benchmarks'))
import generator as generator_bench  # pylint: disable=g-import-not-at-top,wrong-import-position


def _aligner_widths(spec):
  args = argparse.Namespace(tokenizer_workdir=None,
                            tokenizer_config=f'configs/selfboottok_fmnist.py:{spec}')
  adapter, params = generator_bench.tokenizer_and_params(args, sharding.make_mesh(
      generator_bench.load_config_file(args.tokenizer_config).mesh, jax.devices()[:1]))
  ids = np.zeros((1, adapter.num_tokens), np.int32)
  images = jax.jit(adapter.decode_global_ids)(params, ids)
  assert images.shape == (1, *adapter.image_shape)
  widths = {leaf.shape[-1] for path, leaf in jax.tree_util.tree_leaves_with_path(
      params['tokenizer']['aligner']) if 'kernel' in jax.tree_util.keystr(path)}
  return adapter, widths


def test_aligner_stage_config_measures_the_larger_aligner():
  own, own_widths = _aligner_widths('runlocal')
  big, big_widths = _aligner_widths('runlocal,aligner')
  config = generator_bench.load_config_file('configs/selfboottok_fmnist.py:runlocal,aligner')
  assert config.aligner.model.width in big_widths
  assert config.aligner.model.width not in own_widths
  assert big.num_tokens == own.num_tokens  # the generator sees the same G ids
  # The FLOPs are counted on the same tokenizer rebuilt with XLA attention.
  assert generator_bench.with_xla_adapter(big).aligner_cfg.width == config.aligner.model.width
