"""bytedance/1d-tokenizer's TiTok weights (single-stage and two-stage) -> sbt_jax: parity
with the reference's own outputs (tests/golden/titok_reference.npz, made by
tests/golden/reference_titok.py with the unmodified reference code) and the converter's
errors."""
import json
import os

import flax
import jax
import numpy as np
import pytest
from safetensors import numpy as st_numpy

from sbt_jax import config_defaults
from sbt_jax import inference
from sbt_jax import runs
from sbt_jax.evaluators import torch_checkpoint
from sbt_jax.models import generator as generator_lib
from sbt_jax.models import titok
from sbt_jax.sampling import maskgit
from sbt_jax.sampling import restored
from sbt_jax.tools import convert_1d_tokenizer
from sbt_jax.tools import generator_weights
from sbt_jax.tools import titok_weights
from tests.golden import fixture_weights

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), 'golden', 'titok_reference.npz'))
HF = json.loads(str(GOLDEN['hf_config']))
# The golden script's cases: changes to HF's model.vq_model.
CASES = {
    'euclid': {},  # single-stage, Euclidean VQ (the released BL/SL vq8k)
    'l2': {'use_l2_norm': True},
    'legacy': {'use_l2_norm': True, 'is_legacy': True, 'finetune_decoder': True,
               'vit_enc_patch_size': 16},  # two-stage (the released L-32/B-64/S-128)
    'vae': {'quantize_mode': 'vae'},  # single-stage VAE (the released *_vae_c16)
}
VQ_CASES = [tag for tag in CASES if tag != 'vae']


def _shapes(tag):
  return {k: tuple(v) for k, v in json.loads(str(GOLDEN[f'{tag}/shapes'])).items()}


SHAPES = _shapes('euclid')


def _hf(use_l2_norm=False, **changes):
  hf = json.loads(json.dumps(HF))
  hf['model']['vq_model'].update(use_l2_norm=use_l2_norm, **changes)
  return hf


def _weights(tag):
  """The reference model's weights in case `tag` (regenerated; the codebook is stored)."""
  sd = fixture_weights.random_state_dict(_shapes(tag), seed=0)
  if f'{tag}/codebook' in GOLDEN:
    sd['quantize.embedding.weight'] = GOLDEN[f'{tag}/codebook']
  return sd


def _write(tmp_path, hf, sd, name='model.safetensors'):
  (tmp_path / 'config.json').write_text(json.dumps(hf))
  st_numpy.save_file(sd, str(tmp_path / name))
  return str(tmp_path / name), str(tmp_path / 'config.json')


@pytest.fixture(scope='module')
def state_dict():
  return _weights('euclid')


@pytest.mark.parametrize('tag', list(CASES))
def test_reference_names_and_shapes_are_the_reference_models(tag):
  changes = dict(CASES[tag])
  assert titok_weights.reference_shapes(_hf(**changes)) == _shapes(tag)


def _reference_outputs(model, params, images, legacy):
  """The reference's stored quantities from our model, in its layouts, in one compile."""
  def encode(m, x):
    z_BxGxT = m.encoder(x)[0]
    q_BxGxT, aux = m.quantizer(z_BxGxT)
    return z_BxGxT, q_BxGxT, aux['ids']

  def run(params, x):
    z_BxGxT, q_BxGxT, ids_BxG = model.apply(params, x, method=encode)
    decoded = (model.apply(params, ids_BxG, method='decode_ids') + 1) / 2
    channels_first = lambda t: t.transpose(0, 2, 1)[:, :, None]  # pylint: disable=unnecessary-lambda-assignment
    out = {'z': channels_first(z_BxGxT), 'zq': channels_first(q_BxGxT),
           'ids': ids_BxG[:, None], 'decoded': decoded.transpose(0, 3, 1, 2)}
    if legacy:
      out['proxy_logits'] = model.apply(
          params, q_BxGxT, method=lambda m, q: m.decoder(q, proxy_logits=True)
      ).transpose(0, 3, 1, 2)
    return out
  return jax.device_get(jax.jit(run)(params, images))


@pytest.mark.parametrize('tag', VQ_CASES)
def test_converted_run_reproduces_the_reference(tmp_path, tag):
  changes = dict(CASES[tag])
  ckpt, cfg = _write(tmp_path, _hf(**changes), _weights(tag))
  out = str(tmp_path / 'run')
  assert convert_1d_tokenizer.main(['--checkpoint', ckpt, '--hf_config', cfg,
                                    '--out', out]) == 0
  images = GOLDEN['images'] / np.float32(127.5) - 1.0  # ours: [-1, 1]; the reference's [0, 1]
  run = runs.restore_tokenizer(out, runs.local_mesh())
  legacy = tag == 'legacy'
  assert run.config.model.layout == ('reference_legacy' if legacy else 'reference')
  ours = _reference_outputs(run.model, {'params': jax.device_get(run.params)}, images,
                            legacy)
  np.testing.assert_array_equal(ours['ids'], GOLDEN[f'{tag}/ids'])
  for key in ('z', 'zq') + (('proxy_logits',) if legacy else ()):
    np.testing.assert_allclose(ours[key], GOLDEN[f'{tag}/{key}'], atol=2e-5, err_msg=key)
  # Our decode of the ids against both of the reference's decodes (its forward pass and its
  # decode_tokens(ids), which differ by up to 2.4e-5 themselves after the deep conv
  # pixel decoder of the two-stage model).
  for key in ('decoded', 'decoded_from_ids'):
    np.testing.assert_allclose(ours['decoded'], GOLDEN[f'{tag}/{key}'],
                               atol=5e-5 if legacy else 2e-5, err_msg=key)
  if tag == 'euclid':  # the user's path: encode to ids, decode ids (clipped to the range)
    tok = inference.Tokenizer(out, batch_size=8)
    ids = tok.encode(images)
    np.testing.assert_array_equal(ids, GOLDEN[f'{tag}/ids'][:, 0])
    np.testing.assert_allclose(
        (tok.decode(ids) + 1) / 2,
        np.clip(GOLDEN[f'{tag}/decoded_from_ids'], 0, 1).transpose(0, 2, 3, 1), atol=2e-5)


def test_converted_vae_reproduces_the_reference(tmp_path):
  """model.quantizer='vae': the encoder's means and log-variances, the KL, the decoder."""
  ckpt, cfg = _write(tmp_path, _hf(**CASES['vae']), _weights('vae'))
  out = str(tmp_path / 'run')
  assert convert_1d_tokenizer.main(['--checkpoint', ckpt, '--hf_config', cfg,
                                    '--out', out]) == 0
  images = GOLDEN['images'] / np.float32(127.5) - 1.0
  run = runs.restore_tokenizer(out, runs.local_mesh())
  assert run.config.model.quantizer == 'vae' and 'quantizer' not in run.params
  model, params = run.model, {'params': jax.device_get(run.params)}

  @jax.jit
  def outputs(params, x):
    z_BxGx2T = model.apply(params, x, method=lambda m, x: m.encoder(x)[0])
    mean_BxGxT, aux = model.apply(params, x, method='encode')
    return z_BxGx2T, mean_BxGxT, aux['kl'], model.apply(params, mean_BxGxT, method='decode')

  z, mean, kl, decoded = outputs(params, images)
  channels_first = lambda t: np.asarray(t).transpose(0, 2, 1)[:, :, None]  # pylint: disable=unnecessary-lambda-assignment
  np.testing.assert_allclose(channels_first(z), GOLDEN['vae/z'], atol=2e-5)
  np.testing.assert_allclose(channels_first(mean), GOLDEN['vae/mean'], atol=2e-5)
  np.testing.assert_allclose(kl, GOLDEN['vae/kl'], rtol=1e-5)
  np.testing.assert_allclose((np.asarray(decoded) + 1) / 2,
                             GOLDEN['vae/decoded_from_mean'].transpose(0, 2, 3, 1), atol=2e-5)
  # The user's path: latents, not ids.
  tok = inference.Tokenizer(out, batch_size=8)
  np.testing.assert_allclose(tok.encode_latents(images), mean, atol=2e-5)
  with pytest.raises(ValueError, match="model.quantizer='vae' has continuous latents"):
    tok.encode(images)


def test_torch_bin_checkpoint_reads_the_same(tmp_path, state_dict):
  """pytorch_model.bin (torch's zip format) is read without torch, to the same arrays as
  model.safetensors; convert() then takes either."""
  torch_checkpoint.write_torch(str(tmp_path / 'pytorch_model.bin'), state_dict)
  st_numpy.save_file(state_dict, str(tmp_path / 'model.safetensors'))
  a = convert_1d_tokenizer.read_state_dict(str(tmp_path / 'pytorch_model.bin'))
  b = convert_1d_tokenizer.read_state_dict(str(tmp_path / 'model.safetensors'))
  assert sorted(a) == sorted(b) == sorted(state_dict)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])


def _fails(capsys, tmp_path, hf, sd, match):
  ckpt, cfg = _write(tmp_path, hf, sd)
  out = tmp_path / 'run'
  assert convert_1d_tokenizer.main(['--checkpoint', ckpt, '--hf_config', cfg,
                                    '--out', str(out)]) == 1
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and match in err, err
  assert not out.exists()  # nothing written


def test_missing_key_is_named(capsys, tmp_path, state_dict):
  sd = dict(state_dict)
  del sd['decoder.transformer.3.mlp.c_fc.bias']
  _fails(capsys, tmp_path, HF, sd, "'decoder.transformer.3.mlp.c_fc.bias' is missing")


def test_misshapen_key_is_named(capsys, tmp_path, state_dict):
  sd = {**state_dict, 'quantize.embedding.weight': np.zeros((64, 8), np.float32)}
  _fails(capsys, tmp_path, HF, sd, "'quantize.embedding.weight' has shape (64, 8)")


def test_unexpected_key_is_named(capsys, tmp_path, state_dict):
  sd = {**state_dict, 'pixel_decoder.conv_in.weight': np.zeros((3,), np.float32)}
  _fails(capsys, tmp_path, HF, sd, "unexpected parameter 'pixel_decoder.conv_in.weight'")


@pytest.mark.parametrize('changes, match', [
    (dict(is_legacy=True, finetune_decoder=False), 'stage-1 proxy-code checkpoint'),
    (dict(is_legacy=True, finetune_decoder=True, vit_dec_patch_size=8),
     'two-stage decoder needs 16'),
    (dict(vit_enc_model_size='huge'), "vit_enc_model_size='huge'"),
    (dict(quantize_mode='vae', is_legacy=True, finetune_decoder=True),
     "quantize_mode='vae' comes with is_legacy: False"),
])
def test_unsupported_kinds_are_refused(capsys, tmp_path, state_dict, changes, match):
  _fails(capsys, tmp_path, _hf(**changes), state_dict, match)


def test_bad_files_are_one_line(capsys, tmp_path):
  (tmp_path / 'config.json').write_text('{not json')
  (tmp_path / 'model.safetensors').write_bytes(b'garbage')
  for args, match in (
      (['--checkpoint', str(tmp_path / 'model.safetensors'), '--hf_config',
        str(tmp_path / 'config.json')], 'not readable JSON'),
      (['--checkpoint', str(tmp_path / 'nope.safetensors'), '--hf_config',
        str(tmp_path / 'nope.json')], 'not found'),
  ):
    assert convert_1d_tokenizer.main(args + ['--out', str(tmp_path / 'run')]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
  (tmp_path / 'config.json').write_text(json.dumps(HF))
  assert convert_1d_tokenizer.main(['--checkpoint', str(tmp_path / 'model.safetensors'),
                                    '--hf_config', str(tmp_path / 'config.json'),
                                    '--out', str(tmp_path / 'run')]) == 1
  assert 'not a readable safetensors file' in capsys.readouterr().err
  assert not (tmp_path / 'run').exists()


def test_existing_run_is_not_overwritten(capsys, tmp_path, state_dict):
  ckpt, cfg = _write(tmp_path, HF, state_dict)
  out = tmp_path / 'run'
  out.mkdir()
  (out / 'config.json').write_text('{"mine": 1}')
  assert convert_1d_tokenizer.main(['--checkpoint', ckpt, '--hf_config', cfg,
                                    '--out', str(out)]) == 1
  assert 'already holds a run' in capsys.readouterr().err
  assert (out / 'config.json').read_text() == '{"mine": 1}'


def test_bl64_recipe_has_the_released_bl64_parameters():
  """configs/titok_imagenet256.py:bl64 trains the network of the released TiTok-BL-64 VQ
  (its configs/infer/TiTok/titok_bl64_vq8k.yaml), so a converted release can init it."""
  from configs import titok_imagenet256  # pylint: disable=g-import-not-at-top
  hf = _hf(codebook_size=8192, token_size=64, vit_enc_model_size='base',
           vit_dec_model_size='large', vit_enc_patch_size=16, vit_dec_patch_size=16,
           num_latent_tokens=64)
  hf['dataset']['preprocessing']['crop_size'] = 256
  released = convert_1d_tokenizer.model_params_like(titok_weights.config_from_hf(hf))
  ours = convert_1d_tokenizer.model_params_like(titok_imagenet256.get_config('bl64'))
  shapes = lambda t: jax.tree.map(lambda a: a.shape, t)  # pylint: disable=unnecessary-lambda-assignment
  assert shapes(ours) == shapes(released)
  n = sum(np.prod(s) for s in titok_weights.reference_shapes(hf).values())
  assert n == sum(a.size for a in jax.tree.leaves(ours))


# --- generators ---------------------------------------------------------------------------

GEN = np.load(os.path.join(os.path.dirname(__file__), 'golden', 'generator_reference.npz'))
GEN_HF = json.loads(str(GEN['hf_config']))
GENERATE = {'constant': ('constant', False, 2.0), 'linear': ('linear', False, 2.0),
            'power_cosine': ('power-cosine', False, 2.0),
            'power_cosine_annealed': ('power-cosine', True, 2.0),
            # a scale at which guidance changes the ids of these tiny models
            'constant_s40': ('constant', False, 40.0), 'linear_s40': ('linear', False, 40.0)}


def _gen_hf(kind):
  hf = json.loads(json.dumps(GEN_HF))
  hf['model']['generator']['model_type'] = kind
  return hf


def _gen_shapes(kind):
  return {k: tuple(v) for k, v in json.loads(str(GEN[f'{kind}/shapes'])).items()}


def _tiny_tokenizer_run(path, tokens=4, codebook=32, checkpoint=True):
  """A tokenizer run (our layout, random params) with the generator fixture's vocabulary
  (only its config.json without `checkpoint`: all that the converter reads)."""
  config = config_defaults.base_config()
  config.model.num_global_tokens, config.model.codebook_size = tokens, codebook
  if not checkpoint:
    path.mkdir()
    (path / 'config.json').write_text(config.to_json_best_effort())
    return str(path)
  model = titok.build_tokenizer(config)
  params = jax.jit(model.init)(jax.random.key(0), runs.dummy_images(config))['params']
  convert_1d_tokenizer.write_run(str(path), config, flax.linen.meta.unbox(params))
  return str(path)


@pytest.mark.parametrize('kind', ['ViT', 'UViT'])
def test_generator_names_and_shapes_are_the_reference_models(kind):
  assert generator_weights.reference_shapes(_gen_hf(kind)) == _gen_shapes(kind)


@pytest.mark.parametrize('kind', ['ViT', 'UViT'])
def test_converted_generator_reproduces_the_reference(tmp_path, kind):
  tok = _tiny_tokenizer_run(tmp_path / 'tok')
  (tmp_path / 'config.json').write_text(json.dumps(_gen_hf(kind)))
  sd = fixture_weights.random_state_dict(_gen_shapes(kind), seed=0)
  st_numpy.save_file(sd, str(tmp_path / 'model.safetensors'))
  out = str(tmp_path / 'gen')
  assert convert_1d_tokenizer.main([
      '--checkpoint', str(tmp_path / 'model.safetensors'), '--hf_config',
      str(tmp_path / 'config.json'), '--tokenizer_workdir', tok, '--out', out]) == 0
  run = runs.restore_generator(out, runs.local_mesh())
  g = run.config.generator
  assert (g.layout, g.sampling.procedure, g.sampling.num_steps, g.sampling.choice_temperature,
          g.sampling.guidance_scale, g.sampling.guidance_schedule) == (
              {'ViT': 'reference_bert', 'UViT': 'reference_uvit'}[kind], 'reference', 4, 9.5,
              4.5, 'linear')
  model, params = run.model, jax.device_get(run.params)
  labels = GEN['labels']

  @jax.jit
  def logits(params):
    seq = lambda l: generator_lib.maskgit_inputs(GEN['ids'], l, 32)  # pylint: disable=unnecessary-lambda-assignment
    null = np.full_like(labels, model.num_classes)
    return (model.apply({'params': params}, seq(labels))[:, 1:],
            model.apply({'params': params}, seq(null))[:, 1:])

  cond, uncond = logits(params)
  np.testing.assert_allclose(cond, GEN[f'{kind}/cond_logits'], atol=2e-5)
  np.testing.assert_allclose(uncond, GEN[f'{kind}/uncond_logits'], atol=2e-5)

  # Its sampling procedure, without noise (where it is deterministic): the same ids (every
  # guidance variant once; the procedure does not depend on the network).
  cases = GENERATE if kind == 'ViT' else {'power_cosine': GENERATE['power_cosine']}
  for name, (decay, anneal, scale) in cases.items():
    ids = jax.jit(lambda p, l, d=decay, a=anneal, s=scale: maskgit.sample(
        p, l, jax.random.key(0), model=model, num_steps=4, procedure='reference',
        choice_temperature=0.0, guidance_scale=s, guidance_schedule=d, guidance_power=3.0,
        softmax_temperature_annealing=a).ids_BxG)(params, GEN['generate_labels'])
    np.testing.assert_array_equal(ids, GEN[f'{kind}/generate_{name}'], err_msg=name)

  if kind == 'ViT':  # the sample path a user runs, with the converted preset, end to end
    images, ids = restored.RestoredGenerator(out).sample(np.arange(2) % 10, seed=0)
    assert images.shape == (2, 28, 28, 1) and ids.shape == (2, 4) and ids.max() < 32


def test_generator_for_another_tokenizer_is_refused(capsys, tmp_path):
  tok = _tiny_tokenizer_run(tmp_path / 'tok', tokens=8, checkpoint=False)
  (tmp_path / 'config.json').write_text(json.dumps(_gen_hf('ViT')))
  st_numpy.save_file(fixture_weights.random_state_dict(_gen_shapes('ViT'), seed=0),
                     str(tmp_path / 'model.safetensors'))
  assert convert_1d_tokenizer.main([
      '--checkpoint', str(tmp_path / 'model.safetensors'), '--hf_config',
      str(tmp_path / 'config.json'), '--tokenizer_workdir', tok,
      '--out', str(tmp_path / 'gen')]) == 1
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'models 4 ids from 32 codes' in err, err
  assert not (tmp_path / 'gen').exists()


def test_generator_missing_key_is_named(capsys, tmp_path):
  tok = _tiny_tokenizer_run(tmp_path / 'tok', checkpoint=False)
  (tmp_path / 'config.json').write_text(json.dumps(_gen_hf('UViT')))
  sd = fixture_weights.random_state_dict(_gen_shapes('UViT'), seed=0)
  del sd['out_blocks.0.skip_linear.weight']
  st_numpy.save_file(sd, str(tmp_path / 'model.safetensors'))
  assert convert_1d_tokenizer.main([
      '--checkpoint', str(tmp_path / 'model.safetensors'), '--hf_config',
      str(tmp_path / 'config.json'), '--tokenizer_workdir', tok,
      '--out', str(tmp_path / 'gen')]) == 1
  err = capsys.readouterr().err.strip()
  assert "'out_blocks.0.skip_linear.weight' is missing" in err, err
  assert not (tmp_path / 'gen').exists()


def test_converted_generator_fine_tunes_on_the_converted_tokenizer(tmp_path):
  """The generator stage trains a converted release (train.init_from) on the ids of a
  converted reference tokenizer: 3 steps at a small learning rate from its weights."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from configs import generator_fmnist  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import loop  # pylint: disable=g-import-not-at-top
  ckpt, cfg = _write(tmp_path, _hf(), _weights('euclid'))
  tok = str(tmp_path / 'tok')
  convert_1d_tokenizer.convert(ckpt, cfg, tok)
  (tmp_path / 'gen_config.json').write_text(json.dumps(_gen_hf('ViT')))
  st_numpy.save_file(fixture_weights.random_state_dict(_gen_shapes('ViT'), seed=0),
                     str(tmp_path / 'gen.safetensors'))
  released = str(tmp_path / 'released')
  convert_1d_tokenizer.convert_generator(str(tmp_path / 'gen.safetensors'),
                                         str(tmp_path / 'gen_config.json'), tok, released)
  folder = tmp_path / 'images'
  folder.mkdir()
  rs = np.random.RandomState(0)
  for i in range(8):
    Image.fromarray((rs.rand(32, 32, 3) * 255).astype(np.uint8)).save(folder / f'{i}.png')

  c = generator_fmnist.get_config('runlocal')
  c.data.name, c.data.folder, c.data.image_size, c.data.channels = 'folder', str(folder), 32, 3
  c.data.global_batch_size = c.data.eval_batch_size = 8
  source = runs.load_config(released).generator
  for key in ('layout', 'num_classes'):
    c.generator[key] = source[key]
  c.generator.transformer = source.transformer
  c.generator.tokenizer_workdir = tok
  c.generator.use_token_cache = False
  c.generator.attention_impl = 'xla'
  c.train.init_from = released
  c.train.num_steps, c.train.eval_every = 3, -1
  c.optim.learning_rate, c.optim.warmup_steps, c.optim.ema_decay = 1e-4, 1, 0.0
  workdir = str(tmp_path / 'finetuned')
  loop.train_and_evaluate(c, workdir)

  mesh = runs.local_mesh()
  start = jax.device_get(runs.restore_generator(released, mesh).params)
  tuned = jax.device_get(runs.restore_generator(workdir, mesh).params)
  diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), start, tuned))
  assert 0 < max(diffs) < 5e-3  # trained, from the released weights (3 AdamW steps of 1e-4)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    losses = [json.loads(line)['train/loss'] for line in f if 'train/loss' in line]
  assert losses and np.all(np.isfinite(losses))
