"""TaTok and Dynamic Token Filtering: r = 0 drops nothing, the kept tokens are the highest-
entropy ones in decreasing order, the padded and unpadded paths decode identically, a
training run at sampled rates works end to end, and the API names bad input."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tatok_fmnist
from sbt_jax import config_defaults
from sbt_jax.models import dtf
from sbt_jax.models import registry
from tests import fakes
from tests import test_train_step


@pytest.fixture(scope='module')
def model_and_params():
  c = tatok_fmnist.get_config('runlocal')
  model = registry.build_tokenizer(c)
  x = jnp.asarray(test_train_step._batch(6, seed=0)['image'])
  params = fakes.jit_init(model, jax.random.key(0), x, 0.0)['params']
  apply = {}

  def call(method, *args):
    if method not in apply:
      apply[method] = jax.jit(lambda p, *a: model.apply({'params': p}, *a, method=method))
    return jax.device_get(apply[method](params, *args))
  return model, x, call


def _reference_num_kept(entropy_N, rate):
  """Smallest k whose top-k entropy share reaches 1 - rate (numpy, float64)."""
  h = np.sort(np.maximum(entropy_N.astype(np.float64), 0))[::-1]
  if rate <= 0:
    return len(h)
  share = np.cumsum(h) / h.sum()
  return int(np.argmax(share >= 1 - rate - 1e-6)) + 1 if rate < 1 else 0


def test_rate_zero_keeps_every_patch_even_with_zero_entropies():
  entropy_BxN = jnp.array([[3.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1e-9, 2.0, 5.0, 0.1]])
  keep_BxN, _, k_B = dtf.keep_mask(entropy_BxN, jnp.zeros(3))
  assert keep_BxN.all() and (np.asarray(k_B) == 4).all()
  keep_BxN, _, k_B = dtf.keep_mask(entropy_BxN, jnp.ones(3))
  assert not keep_BxN.any() and (np.asarray(k_B) == 0).all()


@pytest.mark.parametrize('rate', [0.1, 0.3, 0.5, 0.9])
def test_kept_count_is_the_smallest_reaching_the_entropy_share(rate):
  entropy_BxN = jax.random.gamma(jax.random.key(1), 0.7, (16, 49))
  k_B = np.asarray(dtf.num_kept(entropy_BxN, jnp.full((16,), rate)))
  want = [_reference_num_kept(e, rate) for e in np.asarray(entropy_BxN)]
  np.testing.assert_array_equal(k_B, want)
  assert (np.diff([np.asarray(dtf.num_kept(entropy_BxN, jnp.full((16,), r))).sum()
                   for r in (0.0, 0.2, 0.6, 1.0)]) <= 0).all()  # more loss, fewer tokens


def test_model_rate_zero_drops_nothing(model_and_params):
  model, x, call = model_and_params
  out = call('encode', x, 0.0)
  assert out['keep'].all()
  np.testing.assert_array_equal(out['num_kept'], model.num_patches)
  _, packed, valid = call('encode_packed', x, 0.0)
  assert valid.all()
  # Packed = every patch id, in rank order.
  np.testing.assert_array_equal(
      packed, np.take_along_axis(out['patch_ids'], out['order'], axis=1))


def test_kept_tokens_are_ordered_by_estimated_entropy(model_and_params):
  model, x, call = model_and_params
  out = call('encode', x, 0.5)
  _, entropy_BxN = call('patch_entropy', out['global_ids'])
  assert 0 < out['num_kept'].min() and out['num_kept'].max() < model.num_patches
  for b in range(len(x)):
    k = out['num_kept'][b]
    ranked = entropy_BxN[b, out['order'][b]]
    assert (np.diff(ranked) <= 0).all()            # decreasing estimated entropy
    kept = entropy_BxN[b, out['keep'][b]]
    dropped = entropy_BxN[b, ~out['keep'][b]]
    assert kept.min() >= dropped.max()             # every kept beats every dropped
    np.testing.assert_array_equal(np.sort(out['order'][b, :k]),
                                  np.flatnonzero(out['keep'][b]))
    assert k == _reference_num_kept(entropy_BxN[b], 0.5)
  # The ranking is a function of the global ids alone (what decode_packed relies on).
  np.testing.assert_array_equal(call('rank_order', out['global_ids']), out['order'])


def test_padded_and_unpadded_paths_decode_identically(model_and_params):
  model, x, call = model_and_params
  out = call('encode', x, 0.4)
  unpadded = call('decode', out['global_ids'], out['patch_ids'], out['keep'])
  # Dropped positions hold other ids: the unpadded path must ignore them.
  scrambled = np.where(out['keep'], out['patch_ids'], (out['patch_ids'] + 7) % 32)
  np.testing.assert_array_equal(
      call('decode', out['global_ids'], scrambled, out['keep']), unpadded)
  g, packed, valid = call('encode_packed', x, 0.4)
  np.testing.assert_array_equal(valid.sum(1), out['num_kept'])
  np.testing.assert_array_equal(call('decode_packed', g, packed, valid), unpadded)
  # Trimmed to the batch's longest kept sequence, with junk in the padding.
  m = int(valid.sum(1).max())
  junk = np.where(valid[:, :m], packed[:, :m], 5)
  np.testing.assert_array_equal(call('decode_packed', g, junk, valid[:, :m]), unpadded)
  # And the decode changes when a kept token changes (the test can fail).
  other = np.where(valid, (packed + 1) % 32, 0)
  assert np.abs(call('decode_packed', g, other, valid) - unpadded).max() > 0


def test_bad_tatok_config_names_the_field():
  c = tatok_fmnist.get_config('runlocal')
  c.model.tatok.train_rate_max = 1.5
  with pytest.raises(ValueError, match=r'model\.tatok\.train_rate_max'):
    config_defaults.validate(c)
  with pytest.raises(ValueError, match='Unknown variants'):
    tatok_fmnist.get_config('runlocal,tiny')


@pytest.fixture(scope='module')
def tatok_run(fmnist_data_dir, tmp_path_factory):
  """4 runlocal TaTok steps at sampled rates; eval at eval_rate at the end."""
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  c = tatok_fmnist.get_config('runlocal')
  c.data.data_dir = fmnist_data_dir
  c.train.eval_every = 0
  c.train.eval_num_images = 16
  workdir = str(tmp_path_factory.mktemp('tatok') / 'w')
  _, results = loop.train_and_evaluate(c, workdir)
  return c, workdir, results


def test_training_run_and_api(tatok_run):
  """The run's eval, then the restored API at several rates and its errors."""
  from sbt_jax import inference  # pylint: disable=g-import-not-at-top
  c, workdir, results = tatok_run
  assert c.model.num_global_tokens < results['eval/tokens_per_image'] <= (
      c.model.num_global_tokens + 49)
  assert np.isfinite(results['eval/psnr']) and results['eval/patch_codes_used'] > 0

  tok = inference.Tokenizer(workdir)
  x = test_train_step._batch(5, seed=3)['image']
  full = tok.encode(x, rate=0.0)
  assert full.shape == (5, c.model.num_global_tokens + 49) and (full >= 0).all()
  ids = tok.encode(x, rate=0.6)
  kept = (ids[:, c.model.num_global_tokens:] >= 0).sum(1)
  assert (kept < 49).all()
  m = c.model.num_global_tokens + int(kept.max())
  np.testing.assert_allclose(tok.decode(ids[:, :m]), tok.decode(ids), atol=1e-6)
  assert np.abs(tok.decode(full) - tok.decode(ids)).max() > 0
  with pytest.raises(ValueError, match='rate'):
    tok.encode(x, rate=1.5)
  with pytest.raises(ValueError, match='-1 padding'):
    bad = ids.copy()
    bad[:, c.model.num_global_tokens] = -1
    bad[:, c.model.num_global_tokens + 1] = 3
    tok.decode(bad)
  with pytest.raises(ValueError, match='patch ids'):
    shifted = ids.copy()
    shifted[:, c.model.num_global_tokens] += 100
    tok.decode(shifted)


def test_generator_ignores_padding():
  """Whatever padded positions hold, the valid positions' logits are the same; padding is
  never scored (and never masked, for MaskGIT)."""
  from configs import generator_fmnist  # pylint: disable=g-import-not-at-top
  from sbt_jax.models import generator as generator_lib  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import generator as generator_trainer  # pylint: disable=g-import-not-at-top
  g = generator_fmnist.get_config('runlocal').generator
  g.attention_impl = 'xla'
  ids_BxS = jax.random.randint(jax.random.key(1), (4, 12), 0, 64)
  valid_BxS = jnp.arange(12)[None] < jnp.array([[12], [9], [6], [4]])
  for gen_type in ('ar', 'maskgit'):
    g.type = gen_type
    model = generator_lib.build_generator(g, vocab_size=64, num_tokens=12)
    extra = int(gen_type == 'maskgit')  # MaskGIT's class token sits in front of the ids
    seq = jnp.concatenate([jnp.full((4, extra), 70), ids_BxS], 1)
    valid = jnp.concatenate([jnp.ones((4, extra), bool), valid_BxS], 1)
    params = fakes.jit_init(model, jax.random.key(0), seq)['params']
    apply = jax.jit(lambda p, s, v: model.apply({'params': p}, s, valid_BxS=v))  # noqa: E731
    other = jnp.where(valid, seq, 7)
    keep = np.asarray(valid)
    np.testing.assert_allclose(np.asarray(apply(params, other, valid))[keep],
                               np.asarray(apply(params, seq, valid))[keep], atol=1e-5)
    unmasked = jnp.ones_like(valid)
    if gen_type == 'maskgit':  # (AR: end padding sits after every valid query anyway)
      assert np.abs(np.asarray(apply(params, other, unmasked))[keep]
                    - np.asarray(apply(params, seq, unmasked))[keep]).max() > 1e-4
    _, _, _, weight = generator_trainer.token_losses(
        params, jnp.where(valid_BxS, ids_BxS, -1), jnp.zeros(4, jnp.int32),
        jax.random.key(2), model=model, g=g, train=True, padded=True)
    weight = np.asarray(weight)
    assert (weight[~np.asarray(valid_BxS)] == 0).all() and (weight.sum(1) >= 1).all()
    if gen_type == 'ar':
      np.testing.assert_array_equal(weight, valid_BxS)


def test_ar_generator_on_tatok_ids(tatok_run, fmnist_data_dir, tmp_path):
  """stage='generator' (AR) over TaTok's padded [global ; kept patch] ids: the cache holds
  -1 padding, training and eval run, samples decode through DTF at the rate."""
  from configs import generator_fmnist  # pylint: disable=g-import-not-at-top
  from sbt_jax.sampling import restored  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  tok_config, tok_workdir, _ = tatok_run
  c = generator_fmnist.get_config('runlocal,ar')
  c.data.data_dir = fmnist_data_dir
  c.generator.tokenizer_workdir = tok_workdir
  c.generator.attention_impl = 'xla'
  c.generator.use_token_cache = True
  c.generator.tatok_rate = 0.5
  workdir = str(tmp_path / 'gen')
  _, results = loop.train_and_evaluate(c, workdir)
  assert np.isfinite(results['eval/loss'])
  cache = [f for f in os.listdir(os.path.join(workdir, 'token_cache')) if 'test' in f]
  with np.load(os.path.join(workdir, 'token_cache', cache[0])) as data:
    ids, tokenizer = data['ids'], str(data['tokenizer'])
  g = tok_config.model.num_global_tokens
  assert ids.shape[1] == g + 49 and 'rate=0.5' in tokenizer
  assert (ids[:, :g] >= 0).all() and (ids[:, :g] < tok_config.model.codebook_size).all()
  patch = ids[:, g:]
  assert (patch == -1).any() and (patch[patch >= 0] >= tok_config.model.codebook_size).all()
  gen = restored.RestoredGenerator(workdir)
  images, sampled = gen.sample(np.arange(8) % 10, seed=0)
  assert images.shape == (8, 28, 28, 1) and np.isfinite(images).all()
  assert sampled.shape == (8, g + 49)
