"""SelfBootTok as the rest of sbt_jax sees it (see models/spec.py).

Stored ids: compress mode [B, G + L] (global then local ids), generate mode [B, G] (the
aligner predicts the local ids when decoding: argmax at temperature 0, else sampled); with
colour ids on (models/colour.py) the C colour ids follow the G global ids in both.
"""
import jax
import jax.numpy as jnp

from sbt_jax.models import colour
from sbt_jax.models import options as options_lib
from sbt_jax.models import selfboottok
from sbt_jax.models import spec as spec_lib


def _ce_bits(logits_BxLxK, ids_BxL):
  """Per image: mean -log2 p(id) over the L local slots under the aligner's logits."""
  nll_BxL = -jnp.take_along_axis(jax.nn.log_softmax(logits_BxLxK), ids_BxL[..., None],
                                 -1)[..., 0]
  return jnp.mean(nll_BxL, axis=1) / jnp.log(2.0)


class SelfBootTokGlobalTokenizer:
  """SelfBootTok in generate mode: the generator models the G global ids only; decoding
  predicts the L local ids with the aligner (params['aligner'] when an aligner-stage run is
  loaded, of size aligner_cfg, else the tokenizer's own) and decodes global + local."""
  padded = False
  cache_tag = ''

  def __init__(self, config, aligner_cfg=None):
    self.config, self.aligner_cfg = config, aligner_cfg
    self.model = selfboottok.build(config, aligner_cfg)
    self.vocab_size = config.model.codebook_size
    self.num_tokens = spec_lib.num_global_ids(config)  # G (+ C colour ids)
    self.image_shape = options_lib.Geometry.from_config(config).image_shape
    # Local ids: argmax of the aligner (0) or sampled at this temperature.
    self.local_temperature = 0.0

  def _params(self, params):
    if 'aligner' in params:
      return {**params['tokenizer'], 'aligner': params['aligner']}
    return params['tokenizer']

  def encode_global_ids(self, params, x_BxHxWxC):
    ids = self.model.apply({'params': self._params(params)}, x_BxHxWxC,
                           method='encode_global')
    return ids.astype(jnp.int32)

  def decode_global_ids(self, params, ids_BxG, rng=None):
    images, _ = self.model.apply({'params': self._params(params)}, ids_BxG,
                                 rng if self.local_temperature > 0 else None,
                                 self.local_temperature, method='decode_generate')
    return images


class SelfBootTokSpec(spec_lib.TokenizerSpec):
  name = 'selfboottok'
  modes = ('compress', 'generate')
  has_aligner_stage = True
  logged_metrics = ('ot_iterations', 'ot_converged', 'ot_plan_entropy',
                    'soft_assignment_entropy')
  extra_reconstructions = (('recon_generate', 'w_generate', 'generate_'),)

  def build(self, config, aligner_cfg=None):
    return selfboottok.build(config, aligner_cfg)

  def validate(self, config, fail):
    m = config.model
    choices = {'model.global_quantizer': (m.global_quantizer, selfboottok.GLOBAL_QUANTIZERS),
               'model.local_tokens': (m.local_tokens, selfboottok.LOCAL_TOKENS),
               'model.align_targets': (m.align_targets, selfboottok.ALIGN_TARGETS),
               'model.generate_local': (m.generate_local, selfboottok.GENERATE_LOCAL),
               'model.ot.marginals': (m.ot.marginals, ('uniform', 'unbalanced')),
               'model.ot.plan_grad': (m.ot.plan_grad, ('none', 'unroll'))}
    for key, (value, allowed) in choices.items():
      if value not in allowed:
        fail(f'{key}={value!r}; expected one of {allowed}')
    if m.global_quantizer == 'soft' and m.quantizer != 'vq':
      fail(f"model.global_quantizer='soft' needs model.quantizer='vq' (soft assignment to "
           f'a learned codebook); got {m.quantizer!r}')
    if m.align_targets == 'ema' and config.optim.ema_decay <= 0:
      fail("model.align_targets='ema' takes its teacher from the EMA params: set "
           f'optim.ema_decay > 0 (got {config.optim.ema_decay})')
    if m.num_local_tokens < 1:
      fail(f'model.num_local_tokens={m.num_local_tokens} must be >= 1 for selfboottok')
    if m.ot.epsilon_rel <= 0:
      fail(f'model.ot.epsilon_rel={m.ot.epsilon_rel} must be > 0')
    if not 0 < m.ot.tau_a <= 1:
      fail(f'model.ot.tau_a={m.ot.tau_a} must be in (0, 1]')
    for key, vit in {'model.aligner': m.aligner, 'aligner.model': config.aligner.model}.items():
      if vit.width % vit.num_heads:
        fail(f'{key}.width={vit.width} is not divisible by num_heads={vit.num_heads}')

  def codebooks(self, config):
    m = config.model
    books = super().codebooks(config)
    if m.global_quantizer == 'soft':  # a learned codebook, restartable
      books = (spec_lib.Codebook('quantizer', m.codebook_size, '', m.token_dim),)
    return books + (spec_lib.book(config, 'local_quantizer', m.local_codebook_size,
                                  m.local_token_dim, 'local_'),)

  def loss_terms(self, config):
    terms = (('align_loss', 'align_weight'), ('local_ce', 'local_ce_weight'))
    if config.model.local_tokens == 'ot':
      terms += (('ot_cost', 'ot_cost_weight'),)
    return terms

  def eval_outputs(self, model, params, x_BxHxWxC, aux, rng, temperature):
    """Local ids, the aligner's per-image local-id cross-entropy (bits/token) and accuracy,
    and generate mode: decoding from the global ids alone with the aligner's local ids."""
    del x_BxHxWxC
    global_ids = colour.join_ids(aux)
    logits = model.apply({'params': params}, global_ids, method='local_logits')
    gen_BxHxWxC, pred = model.apply({'params': params}, global_ids, rng, temperature,
                                    method='decode_generate')
    metrics = {'local_ce_bits': _ce_bits(logits, aux['local_ids']),
               'local_accuracy': jnp.mean((pred == aux['local_ids']).astype(jnp.float32), 1)}
    return ({'ids': aux['ids'], 'local_ids': aux['local_ids']}, metrics,
            {'generate_': gen_BxHxWxC})

  def ids_per_image(self, config, mode):
    return spec_lib.num_global_ids(config) + (
        config.model.num_local_tokens if mode == 'compress' else 0)

  def encode_fn(self, model, mode):
    if mode == 'generate':
      return lambda p, x, rate: model.apply({'params': p}, x, method='encode_global')
    return lambda p, x, rate: jnp.concatenate(
        model.apply({'params': p}, x, method='encode'), axis=1)

  def check_ids(self, config, ids):
    """[B, G + L] decodes in compress mode, [B, G] in generate mode (G: the global ids,
    colour ids included)."""
    ids = spec_lib.as_int_ids(ids)
    m = config.model
    g, l = spec_lib.num_global_ids(config), m.num_local_tokens
    if ids.shape[1] not in (g, g + l):
      raise ValueError(f'decode expects ids of shape [B, {g} or {g + l}]; got {ids.shape}')
    spec_lib.check_global_ids(config, ids)
    if ids.shape[1] == g:
      return ids, 'generate'
    spec_lib.check_id_range(ids, g, g + l, m.local_codebook_size, 'local')
    return ids, 'compress'

  def decode_fn(self, model, kind):
    if kind == 'generate':
      return lambda p, ids, rng, t, rate: model.apply({'params': p}, ids, rng, t,
                                                      method='decode_generate')[0]
    return super().decode_fn(model, kind)

  def id_histograms(self, config, ids, mode):
    out = super().id_histograms(config, ids, mode)
    if mode == 'compress':
      m = config.model
      out['local_'] = (ids[:, spec_lib.num_global_ids(config):].reshape(-1),
                       m.local_codebook_size)
    return out

  def ids_metrics_fn(self, model, config, mode):
    """Compress mode: per image, the aligner's mean -log2 p(local id | global ids) over the
    L slots, the bits per local token that the global ids do not already determine."""
    if mode != 'compress':
      return None
    g = spec_lib.num_global_ids(config)

    def local_ce_bits(params, ids):
      logits = model.apply({'params': params}, ids[:, :g], method='local_logits')
      return {'local_ce_bits': _ce_bits(logits, ids[:, g:])}
    return local_ce_bits

  def global_tokenizer(self, config, rate=-1.0, aligner_cfg=None):
    del rate
    return SelfBootTokGlobalTokenizer(config, aligner_cfg)
