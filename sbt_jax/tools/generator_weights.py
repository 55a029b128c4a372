"""bytedance/1d-tokenizer's MaskGIT generators -> an sbt_jax generator config and params.

`config_from_hf(hf, tokenizer_config)` reads model.generator of the reference's config.json
(ImageBert for model_type 'ViT', UViTBert for 'UViT') into our generator section
(generator.layout 'reference_bert' / 'reference_uvit', models/generator_reference.py) with
its sampling preset (procedure='reference', randomize_temperature, guidance, steps; the
softmax temperature annealing and guidance_scale_pow 3.0 of its sample_imagenet_titok.py);
`reference_shapes(hf)` is every torch name with its shape; `to_params(sd, g)` the mapping.
"""
from sbt_jax.tools import titok_weights

ReferenceConfigError = titok_weights.ReferenceConfigError
LAYOUTS = {'ViT': 'reference_bert', 'UViT': 'reference_uvit'}
# Buffers some transformers versions save with BertModel (not parameters): ignored.
IGNORED_SUFFIXES = ('embeddings.position_ids',)


def _section(hf: dict) -> tuple[dict, dict]:
  try:
    gen, vq = hf['model']['generator'], hf['model']['vq_model']
  except (KeyError, TypeError) as e:
    raise ReferenceConfigError(
        f'not a 1d-tokenizer generator config: no {e} (expected model.generator.* and '
        'model.vq_model.*, as in its configs/infer/TiTok/titok_l32.yaml)') from None
  return gen, vq


def _int(section: dict, key: str, where: str, vq: dict) -> int:
  if key not in section:
    raise ReferenceConfigError(f'{where}.{key} is missing')
  value = section[key]
  if isinstance(value, str) and value.startswith('${model.vq_model.'):  # OmegaConf reference
    value = vq.get(value[len('${model.vq_model.'):-1])
  try:
    return int(value)
  except (TypeError, ValueError):
    raise ReferenceConfigError(f'{where}.{key}={section[key]!r} is not an integer') from None


def sizes(hf: dict) -> dict:
  """The generator's sizes and sampling preset, checked."""
  gen, vq = _section(hf)
  kind = gen.get('model_type', 'ViT')
  if kind not in LAYOUTS:
    raise ReferenceConfigError(f"model.generator.model_type={kind!r}; expected 'ViT' "
                               "(ImageBert) or 'UViT' (UViTBert)")
  out = {k: _int(gen, k, 'model.generator', vq) for k in (
      'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size',
      'image_seq_len', 'condition_num_classes')}
  out['codebook_size'] = _int(vq, 'codebook_size', 'model.vq_model', vq)
  out['layout'] = LAYOUTS[kind]
  if out['intermediate_size'] % out['hidden_size'] or out['hidden_size'] % out[
      'num_attention_heads']:
    raise ReferenceConfigError(
        f'model.generator: intermediate_size={out["intermediate_size"]} must be a multiple '
        f'of hidden_size={out["hidden_size"]}, itself a multiple of num_attention_heads='
        f'{out["num_attention_heads"]}')
  out['num_steps'] = _int(gen, 'num_steps', 'model.generator', vq)
  out['randomize_temperature'] = float(gen.get('randomize_temperature', 4.5))
  out['guidance_scale'] = float(gen.get('guidance_scale', 3.0))
  out['guidance_decay'] = gen.get('guidance_decay', 'constant')
  if out['guidance_decay'] not in ('constant', 'linear', 'power-cosine'):
    raise ReferenceConfigError(f'model.generator.guidance_decay={out["guidance_decay"]!r}')
  out['label_drop'] = float(gen.get('class_label_dropout', 0.1))
  return out


def config_from_hf(hf: dict, config, tokenizer_config):
  """`config` (a generator-stage config) with generator.* set for the reference generator
  `hf` describes, checked against the tokenizer it samples for."""
  s = sizes(hf)
  tm = tokenizer_config.model
  if (tm.codebook_size, tm.num_global_tokens) != (s['codebook_size'], s['image_seq_len']):
    raise ReferenceConfigError(
        f'the generator models {s["image_seq_len"]} ids from {s["codebook_size"]} codes; the '
        f'tokenizer run has {tm.num_global_tokens} from {tm.codebook_size}: pass the converted '
        'tokenizer this generator was trained on')
  g = config.generator
  g.type = 'maskgit'
  g.layout = s['layout']
  g.transformer.width = s['hidden_size']
  g.transformer.depth = s['num_hidden_layers']
  g.transformer.num_heads = s['num_attention_heads']
  g.transformer.mlp_ratio = s['intermediate_size'] // s['hidden_size']
  g.num_classes = s['condition_num_classes']
  g.label_drop = s['label_drop']
  g.mask_schedule = 'arccos'
  g.compute_dtype = 'float32'  # the reference's numbers
  p = g.sampling
  p.procedure = 'reference'
  p.temperature = 1.0
  p.num_steps = s['num_steps']
  p.choice_temperature = s['randomize_temperature']
  p.guidance_scale = s['guidance_scale']
  p.guidance_schedule = s['guidance_decay']
  p.guidance_power = 3.0  # generate()'s guidance_scale_pow default
  p.softmax_temperature_annealing = True  # as its sample_imagenet_titok.py (FID samples)
  return config


def reference_shapes(hf: dict) -> dict:
  s = sizes(hf)
  d, depth, m = s['hidden_size'], s['num_hidden_layers'], s['intermediate_size']
  table = s['codebook_size'] + s['condition_num_classes'] + 2
  v, length = s['codebook_size'], s['image_seq_len'] + 1
  if s['layout'] == 'reference_bert':
    e = 'model.embeddings'
    shapes = {f'{e}.word_embeddings.weight': (table, d),
              f'{e}.position_embeddings.weight': (length, d),
              f'{e}.token_type_embeddings.weight': (2, d),
              f'{e}.LayerNorm.weight': (d,), f'{e}.LayerNorm.bias': (d,),
              'model.lm_head.weight': (v, d), 'model.lm_head.bias': (v,)}
    for i in range(depth):
      b = f'model.encoder.layer.{i}'
      for part in ('attention.self.query', 'attention.self.key', 'attention.self.value',
                   'attention.output.dense'):
        shapes.update({f'{b}.{part}.weight': (d, d), f'{b}.{part}.bias': (d,)})
      for ln in ('attention.output.LayerNorm', 'output.LayerNorm'):
        shapes.update({f'{b}.{ln}.weight': (d,), f'{b}.{ln}.bias': (d,)})
      shapes.update({f'{b}.intermediate.dense.weight': (m, d),
                     f'{b}.intermediate.dense.bias': (m,),
                     f'{b}.output.dense.weight': (d, m), f'{b}.output.dense.bias': (d,)})
    return shapes
  shapes = {'embeddings.weight': (table, d), 'pos_embed': (1, length, d),
            'norm.weight': (d,), 'norm.bias': (d,), 'lm_head.weight': (v, d),
            'lm_head.bias': (v,)}
  for prefix, skip in _uvit_blocks(depth):
    shapes.update({
        f'{prefix}.norm1.weight': (d,), f'{prefix}.norm1.bias': (d,),
        f'{prefix}.attn.qkv.weight': (3 * d, d),
        f'{prefix}.attn.proj.weight': (d, d), f'{prefix}.attn.proj.bias': (d,),
        f'{prefix}.norm2.weight': (d,), f'{prefix}.norm2.bias': (d,),
        f'{prefix}.mlp.fc1.weight': (m, d), f'{prefix}.mlp.fc1.bias': (m,),
        f'{prefix}.mlp.fc2.weight': (d, m), f'{prefix}.mlp.fc2.bias': (d,)})
    if skip:
      shapes.update({f'{prefix}.skip_linear.weight': (d, 2 * d),
                     f'{prefix}.skip_linear.bias': (d,)})
  return shapes


def _uvit_blocks(depth: int):
  """(torch prefix, has skip_linear) of UViTBert's blocks; our names replace '.' by '_'."""
  half = depth // 2
  return ([(f'in_blocks.{i}', False) for i in range(half)] + [('mid_block', False)]
          + [(f'out_blocks.{i}', True) for i in range(half)])


def _ours(prefix: str) -> str:
  """UViT torch block prefix -> our parameter prefix (in_blocks.3 -> in_3, mid_block -> mid)."""
  if prefix == 'mid_block':
    return 'mid'
  kind, i = prefix.split('.')
  return f'{kind[:-len("_blocks")]}_{i}'


def _linear(sd, name):
  return {'kernel': sd[f'{name}.weight'].T, 'bias': sd[f'{name}.bias']}


def _norm(sd, name):
  return {'scale': sd[f'{name}.weight'], 'bias': sd[f'{name}.bias']}


def _heads_in(sd, name, heads):
  w, b = sd[f'{name}.weight'], sd[f'{name}.bias']  # [D_out, D_in]
  d = w.shape[1]
  return {'kernel': w.T.reshape(d, heads, d // heads), 'bias': b.reshape(heads, d // heads)}


def _heads_out(sd, name, heads):
  w = sd[f'{name}.weight']
  d = w.shape[0]
  return {'kernel': w.T.reshape(heads, d // heads, d), 'bias': sd[f'{name}.bias']}


def to_params(sd: dict, g) -> dict:
  """Our generator params (generator.layout reference_*) from the checked state dict."""
  t = g.transformer
  h = t.num_heads
  if g.layout == 'reference_bert':
    e = 'model.embeddings'
    params = {
        'word_embeddings': {'embedding': sd[f'{e}.word_embeddings.weight']},
        'position_embeddings': sd[f'{e}.position_embeddings.weight'],
        'token_type_embedding': sd[f'{e}.token_type_embeddings.weight'][:1],
        'embeddings_ln': _norm(sd, f'{e}.LayerNorm'),
        'lm_head': _linear(sd, 'model.lm_head'),
    }
    for i in range(t.depth):
      b, n = f'model.encoder.layer.{i}', f'layer{i}'
      params.update({
          f'{n}_query': _heads_in(sd, f'{b}.attention.self.query', h),
          f'{n}_key': _heads_in(sd, f'{b}.attention.self.key', h),
          f'{n}_value': _heads_in(sd, f'{b}.attention.self.value', h),
          f'{n}_attention_out': _heads_out(sd, f'{b}.attention.output.dense', h),
          f'{n}_attention_ln': _norm(sd, f'{b}.attention.output.LayerNorm'),
          f'{n}_intermediate': _linear(sd, f'{b}.intermediate.dense'),
          f'{n}_output': _linear(sd, f'{b}.output.dense'),
          f'{n}_output_ln': _norm(sd, f'{b}.output.LayerNorm'),
      })
    return titok_weights.as_float32(params)
  d = t.width
  params = {'embeddings': {'embedding': sd['embeddings.weight']},
            'pos_embed': sd['pos_embed'][0], 'norm': _norm(sd, 'norm'),
            'lm_head': _linear(sd, 'lm_head')}
  for prefix, skip in _uvit_blocks(t.depth):
    n = _ours(prefix)
    qkv = sd[f'{prefix}.attn.qkv.weight']  # [3 D, D]: (3, H, K) rows
    params.update({
        f'{n}_norm1': _norm(sd, f'{prefix}.norm1'),
        f'{n}_qkv': {'kernel': qkv.reshape(3, h, d // h, d).transpose(3, 0, 1, 2)},
        f'{n}_proj': _heads_out(sd, f'{prefix}.attn.proj', h),
        f'{n}_norm2': _norm(sd, f'{prefix}.norm2'),
        f'{n}_fc1': _linear(sd, f'{prefix}.mlp.fc1'),
        f'{n}_fc2': _linear(sd, f'{prefix}.mlp.fc2'),
    })
    if skip:
      params[f'{n}_skip_linear'] = _linear(sd, f'{prefix}.skip_linear')
  return titok_weights.as_float32(params)


def drop_ignored(sd: dict) -> dict:
  return {k: v for k, v in sd.items() if not k.endswith(IGNORED_SUFFIXES)}
