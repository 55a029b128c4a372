"""Generator stage: a MaskGIT or AR transformer over a frozen tokenizer's global ids.

`frozen` is the tokenizer adapter's params (models/spec.py: global_tokenizer; restored by
runs.restore_global_tokenizer), passed to the jitted
step as a sharded, non-donated argument. A batch holds either `image` (the step encodes it
to ids with the frozen tokenizer) or `ids` (from the token cache, data/token_cache.py), and
`label`. Eval: validation loss on data.eval_split and a PNG grid of class-balanced samples.
"""
import functools

import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sbt_jax import checkpointing
from sbt_jax import paths
from sbt_jax import runs
from sbt_jax import sharding
from sbt_jax.data import pipeline
from sbt_jax.data import token_cache
from sbt_jax.evaluators import image_grid
from sbt_jax.models import generator as generator_lib
from sbt_jax.sampling import generate
from sbt_jax.sampling import schedules
from sbt_jax.trainers import state as state_lib


def drop_labels(labels_B, rng, drop_prob: float, null_label: int):
  """Replaces each label by the null class with probability drop_prob (for CFG)."""
  drop_B = jax.random.bernoulli(rng, drop_prob, labels_B.shape)
  return jnp.where(drop_B, null_label, labels_B)


def random_mask(rng, batch: int, num_tokens: int, schedule: str, valid_BxG=None):
  """[B, G] bool: per example, ceil(n * mask_ratio(u)) random positions among its n valid
  ones (all G when valid_BxG is None), u ~ U(0, 1)."""
  u_rng, pos_rng = jax.random.split(rng)
  ratio_B = schedules.mask_ratio(jax.random.uniform(u_rng, (batch,)), schedule)
  noise_BxG = jax.random.uniform(pos_rng, (batch, num_tokens))
  n_B = jnp.full((batch,), num_tokens, jnp.float32)
  if valid_BxG is not None:
    noise_BxG = jnp.where(valid_BxG, noise_BxG, 2.0)  # padding ranks last
    n_B = jnp.sum(valid_BxG, axis=1).astype(jnp.float32)
  num_masked_B = jnp.clip(jnp.ceil(ratio_B * n_B), 1, n_B).astype(jnp.int32)
  rank_BxG = jnp.argsort(jnp.argsort(noise_BxG, 1), 1)
  return rank_BxG < num_masked_B[:, None]


def token_losses(params, ids_BxG, labels_B, rng, *, model, g: ml_collections.ConfigDict,
                 train: bool, padded: bool = False):
  """Per-position smoothed cross-entropy, NLL, correctness and weight (positions scored).

  MaskGIT scores the masked positions only; AR scores every position (next-token loss).
  padded: ids may hold -1 (padding of variable-length sequences, e.g. TaTok's): padding is
  never scored, never masked and hidden from attention.
  """
  drop_rng, mask_rng = jax.random.split(rng)
  if train and g.label_drop > 0:
    labels_B = drop_labels(labels_B, drop_rng, g.label_drop, g.num_classes)
  v = model.vocab_size
  valid_BxG = ids_BxG >= 0 if padded else None
  ids_BxG = jnp.maximum(ids_BxG, 0)
  ones_Bx1 = jnp.ones((ids_BxG.shape[0], 1), bool)
  if g.type == 'maskgit':
    masked_BxG = random_mask(mask_rng, *ids_BxG.shape, g.mask_schedule, valid_BxG)
    inputs_BxG = jnp.where(masked_BxG, generator_lib.mask_id(v), ids_BxG)
    keys = None if valid_BxG is None else jnp.concatenate([ones_Bx1, valid_BxG], 1)
    logits_BxGxV = model.apply({'params': params},
                               generator_lib.maskgit_inputs(inputs_BxG, labels_B, v),
                               valid_BxS=keys)[:, 1:]
    weight_BxG = masked_BxG.astype(jnp.float32)
  else:
    keys = None if valid_BxG is None else jnp.concatenate([ones_Bx1, valid_BxG[:, :-1]], 1)
    logits_BxGxV = model.apply({'params': params},
                               generator_lib.ar_inputs(ids_BxG, labels_B, v), valid_BxS=keys)
    weight_BxG = jnp.ones(ids_BxG.shape, jnp.float32)
  if valid_BxG is not None:
    weight_BxG = weight_BxG * valid_BxG
  onehot_BxGxV = jax.nn.one_hot(ids_BxG, v)
  smooth_BxGxV = optax.smooth_labels(onehot_BxGxV, g.label_smoothing)
  xent_BxG = optax.softmax_cross_entropy(logits_BxGxV, smooth_BxGxV)
  nll_BxG = optax.softmax_cross_entropy_with_integer_labels(logits_BxGxV, ids_BxG)
  correct_BxG = (jnp.argmax(logits_BxGxV, -1) == ids_BxG).astype(jnp.float32)
  return xent_BxG, nll_BxG, correct_BxG, weight_BxG


def batch_ids(frozen, batch, *, adapter):
  """The batch's global ids: cached, or encoded by the frozen tokenizer inside the step."""
  if 'ids' in batch:
    return batch['ids'].astype(jnp.int32)
  return jax.lax.stop_gradient(adapter.encode_global_ids(frozen, batch['image']))


def generator_loss(params, ids_BxG, labels_B, rng, *, model, g, padded=False):
  xent, nll, correct, weight = token_losses(params, ids_BxG, labels_B, rng, model=model, g=g,
                                            train=True, padded=padded)
  total = jnp.maximum(jnp.sum(weight), 1.0)
  loss = jnp.sum(xent * weight) / total
  metrics = {'loss': loss, 'nll': jnp.sum(nll * weight) / total,
             'accuracy': jnp.sum(correct * weight) / total,
             'scored_fraction': jnp.mean(weight)}
  return loss, metrics


def train_step(state, frozen, batch, rng, *, model, adapter, tx, config):
  ids_BxG = batch_ids(frozen, batch, adapter=adapter)
  grad_fn = jax.value_and_grad(
      functools.partial(generator_loss, model=model, g=config.generator,
                        padded=adapter.padded), has_aux=True)
  (_, metrics), grads = grad_fn(state.params, ids_BxG, batch['label'], rng)
  metrics['grad_norm'] = optax.global_norm(grads)
  metrics['learning_rate'] = state_lib.learning_rate_schedule(
      config.optim, config.train.num_steps)(state.step)
  return state_lib.apply_gradients(state, grads, tx, config.optim.ema_decay), metrics


def eval_step(params, frozen, batch, rng, *, model, adapter, g):
  """Per-example sums over scored positions: (nll, correct, count), each [B]."""
  ids_BxG = batch_ids(frozen, batch, adapter=adapter)
  _, nll, correct, weight = token_losses(params, ids_BxG, batch['label'], rng, model=model,
                                         g=g, train=False, padded=adapter.padded)
  return jnp.sum(nll * weight, 1), jnp.sum(correct * weight, 1), jnp.sum(weight, 1)


class GeneratorTask:
  """What the shared loop needs from the generator stage."""

  def __init__(self, config: ml_collections.ConfigDict, mesh):
    self.config = config
    self.mesh = mesh
    g = config.generator
    try:
      _, self.adapter = runs.global_tokenizer_for(g.tokenizer_workdir, g.tatok_rate)
    except FileNotFoundError as e:
      raise FileNotFoundError(f'generator.tokenizer_workdir={g.tokenizer_workdir!r}: {e}') from e
    d = config.data
    if self.adapter.image_shape != (d.image_size, d.image_size, d.channels):
      raise ValueError(
          f'data.image_size={d.image_size}, data.channels={d.channels} do not match the '
          f'tokenizer in generator.tokenizer_workdir={g.tokenizer_workdir!r} (images '
          f'{self.adapter.image_shape}).')
    self.model = generator_lib.build_generator(g, self.adapter.vocab_size,
                                               self.adapter.num_tokens)
    self.tx = state_lib.make_optimizer(config.optim, config.train.num_steps)
    self.train_step = functools.partial(train_step, model=self.model, adapter=self.adapter,
                                        tx=self.tx, config=config)
    self._frozen = None
    self.tokenizer_step = None
    self._pinned_step = None  # a resumed run keeps the tokenizer step it started with
    self._jitted = {}

  def boxed_state(self, rng):
    params = self.model.init(rng, runs.generator_dummy_seq(self.config,
                                                           self.adapter.num_tokens))['params']
    return state_lib.create(params, self.tx, self.config.optim.ema_decay > 0)

  def init_state(self, rng):
    return nn.meta.unbox(self.boxed_state(rng))

  def warm_start(self, state, state_shardings):
    """state with params and EMA params from train.init_from, a generator run with the same
    network (e.g. a converted release: docs/official_weights.md); unchanged when unset."""
    t = self.config.train
    if not t.init_from:
      return state
    source = runs.load_config(t.init_from)
    runs.expect_stage(source, t.init_from, 'generator', 'train.init_from')
    mine, theirs = self.config.generator, source.generator
    for key in ('type', 'layout'):
      if mine[key] != theirs[key]:
        raise ValueError(f'train.init_from={t.init_from!r} is a generator.{key}='
                         f'{theirs[key]!r} run; this config builds {mine[key]!r}')
    return runs.warm_start(state, state_shardings, t.init_from, t.init_from_step)

  def load_frozen(self):
    """The frozen tokenizer's params (loaded once; a missing checkpoint is a clear error)."""
    if self._frozen is None:
      g = self.config.generator
      step = g.tokenizer_step if self._pinned_step is None else self._pinned_step
      try:
        _, self._frozen, self.tokenizer_step = runs.restore_global_tokenizer(
            g.tokenizer_workdir, self.mesh, step, rate=g.tatok_rate)
      except checkpointing.CheckpointError as e:
        raise checkpointing.CheckpointError(
            f'generator.tokenizer_workdir={g.tokenizer_workdir!r} '
            f'(generator.tokenizer_step={g.tokenizer_step}): {e}') from e
    return self._frozen

  # -- data ---------------------------------------------------------------------------
  def _cache(self, split: str, workdir: str):
    g = self.config.generator
    frozen = jax.device_put(self.load_frozen(), sharding.replicated(self.mesh))
    cache_dir = g.token_cache_dir or paths.join(workdir, 'token_cache')
    path = token_cache.cache_path(cache_dir, self.config.data, split, self.tokenizer_step)
    if 'encode' not in self._jitted:
      self._jitted['encode'] = jax.jit(self.adapter.encode_global_ids)
    tokenizer = (f'{paths.resolve(g.tokenizer_workdir)}@{self.tokenizer_step}'
                 f'{self.adapter.cache_tag}')
    arrays, _ = token_cache.load_or_build(
        path, self.config.data, split, functools.partial(self._jitted['encode'], frozen),
        self.mesh, tokenizer=tokenizer)
    return arrays, path

  def make_train_loader(self, workdir: str):
    """Images (encoded in the step) or, with use_token_cache, ids from the cache.

    Records the tokenizer (workdir, step) in <workdir>/tokenizer.json; a resumed run with
    generator.tokenizer_step=-1 keeps the recorded step even if the tokenizer trained on.
    """
    g = self.config.generator
    tok_workdir = paths.resolve(g.tokenizer_workdir)
    record = runs.read_tokenizer_record(workdir)
    if g.tokenizer_step < 0 and record is not None and record[0] == tok_workdir:
      self._pinned_step = record[1]
    self.load_frozen()
    if jax.process_index() == 0:
      runs.write_tokenizer_record(workdir, tok_workdir, self.tokenizer_step)
    d = self.config.data
    if not self.config.generator.use_token_cache:
      return pipeline.make_train_loader(d, seed=self.config.seed,
                                        process_index=jax.process_index(),
                                        process_count=jax.process_count())
    arrays, path = self._cache(d.train_split, workdir)
    return token_cache.make_train_loader(
        arrays, paths.name(path), global_batch_size=d.global_batch_size,
        seed=self.config.seed, process_index=jax.process_index(),
        process_count=jax.process_count())

  def _eval_loader(self, workdir):
    cfg = self.config
    if cfg.generator.use_token_cache and workdir is not None:
      arrays, _ = self._cache(cfg.data.eval_split, workdir)
      return token_cache.eval_batches(
          arrays, global_batch_size=cfg.data.eval_batch_size,
          num_examples=cfg.train.eval_num_images, process_index=jax.process_index(),
          process_count=jax.process_count())
    return pipeline.make_eval_loader(
        cfg.data, num_images=cfg.train.eval_num_images, process_index=jax.process_index(),
        process_count=jax.process_count())

  # -- eval ----------------------------------------------------------------------------
  def sample_images(self, params, frozen, labels_B, rng):
    """Images [B, H, W, C] in [-1, 1] sampled for labels_B (jitted, compiled once)."""
    if 'sample' not in self._jitted:
      sample_ids = generate.ids_sampler(self.model, self.config.generator)

      def sample(p, f, labels, r):
        return jnp.clip(self.adapter.decode_global_ids(f, sample_ids(p, labels, r)), -1, 1)
      self._jitted['sample'] = jax.jit(sample)
    return self._jitted['sample'](params, frozen, jnp.asarray(labels_B), rng)

  def evaluate(self, state, frozen, *, step: int, workdir: str | None):
    """Validation NLL / accuracy over scored positions of data.eval_split + a sample grid."""
    cfg = self.config
    if 'eval' not in self._jitted:
      self._jitted['eval'] = jax.jit(functools.partial(
          eval_step, model=self.model, adapter=self.adapter, g=cfg.generator))
    params = state_lib.eval_params(state)
    nll = correct = count = 0.0
    num_images = 0.0
    for i, local_batch in enumerate(self._eval_loader(workdir)):
      batch = sharding.global_batch(local_batch, self.mesh)
      sums = self._jitted['eval'](params, frozen, batch, jax.random.key(i))
      mask, *sums = (np.asarray(multihost_utils.process_allgather(x, tiled=True), np.float64)
                     for x in (batch['mask'],) + tuple(sums))
      nll += float(np.sum(sums[0] * mask))
      correct += float(np.sum(sums[1] * mask))
      count += float(np.sum(sums[2] * mask))
      num_images += float(mask.sum())
    # eval/loss is the unsmoothed cross-entropy (nats per scored token).
    results = {'eval/loss': nll / max(count, 1.0), 'eval/accuracy': correct / max(count, 1.0),
               'eval/num_images': num_images}
    if workdir is not None and cfg.train.grid_num_images > 0:
      c = cfg.generator.num_classes
      n = max(c, cfg.train.grid_num_images // c * c)
      labels = generate.class_balanced_labels(n, c)
      images = np.asarray(self.sample_images(params, frozen, labels,
                                             jax.random.key(cfg.seed)))
      if jax.process_index() == 0:
        rows = [images[i:i + c] for i in range(0, n, c)]
        path = paths.join(workdir, 'images', f'samples_{step:07d}.png')
        image_grid.save_grid(path, rows, scale=2 if cfg.data.image_size < 64 else 1)
    return results
