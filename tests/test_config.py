"""Configs: locked keys, types, cross-field validation, variants, CLI errors."""
import importlib
import subprocess
import sys

import ml_collections
from ml_collections import config_flags  # pylint: disable=unused-import
import pytest

from configs import common
from configs import titok_fmnist
from sbt_jax import config_defaults

CONFIGS = ('titok_fmnist', 'selfboottok_fmnist', 'tatok_fmnist', 'generator_fmnist',
           'titok_imagenet256', 'selfboottok_imagenet256', 'tatok_imagenet256',
           'generator_imagenet256', 'titok_photos', 'selfboottok_photos', 'tatok_photos')


def test_unknown_key_is_an_error():
  c = config_defaults.base_config()
  with pytest.raises(AttributeError, match='num_stepz'):
    c.train.num_stepz = 3
  with pytest.raises(AttributeError):
    c.new_section = ml_collections.ConfigDict()


def test_wrong_type_is_an_error():
  c = config_defaults.base_config()
  with pytest.raises(TypeError):
    c.train.num_steps = 'many'


@pytest.mark.parametrize('field,value,match', [
    ('model.patch_size', 5, 'not divisible by model.patch_size'),
    ('data.channels', 2, 'data.channels'),
    ('stage', 'teleport', 'stage'),
    ('model.compute_dtype', 'float16', 'compute_dtype'),
    ('mesh.fsdp', -1, 'at most one may be -1'),
])
def test_validate_names_the_field(field, value, match):
  c = titok_fmnist.get_config()
  section, _, key = field.rpartition('.')
  (c[section] if section else c)[key] = value
  with pytest.raises(ValueError, match=match):
    config_defaults.validate(c)


def test_variants():
  full, local = titok_fmnist.get_config(), titok_fmnist.get_config('runlocal')
  config_defaults.validate(full)
  config_defaults.validate(local)
  assert local.train.num_steps < full.train.num_steps
  assert local.model.compute_dtype == 'float32'
  assert titok_fmnist.get_config('bf16,runlocal').model.compute_dtype == 'bfloat16'
  with pytest.raises(ValueError, match='Unknown variants'):
    titok_fmnist.get_config('huge')


@pytest.mark.parametrize('module', CONFIGS)
def test_every_config_rejects_an_unknown_variant_and_stays_locked(module):
  get_config = importlib.import_module(f'configs.{module}').get_config
  c = get_config(None)
  with pytest.raises(AttributeError):
    c.train.num_stepz = 3
  message = rf"^Unknown variants \['nope'\] for {module}; known: \[.*'runlocal'.*\]$"
  with pytest.raises(ValueError, match=message):
    get_config('runlocal,nope')


def test_parse_variants():
  assert common.parse_variants('a,b', ('a', 'b', 'c'), 'x') == {'a', 'b'}
  assert common.parse_variants('', ('a',), 'x') == set()
  assert common.parse_variants(None, ('a', 'b'), 'x', default=('b',)) == {'b'}
  with pytest.raises(ValueError) as e:
    common.parse_variants('a,zz,yy', ('b', 'a'), 'cfg')
  assert str(e.value) == "Unknown variants ['yy', 'zz'] for cfg; known: ['a', 'b']"
  with pytest.raises(ValueError, match=r"Unknown variants \[''\]"):
    common.parse_variants('a,', ('a',), 'cfg')


def test_pick_one():
  assert common.pick_one({'a', 'x'}, ('a', 'b'), 'cfg') == 'a'
  assert common.pick_one({'x'}, ('a', 'b'), 'cfg', required=False) is None
  with pytest.raises(ValueError, match='exactly one'):
    common.pick_one({'x'}, ('a', 'b'), 'cfg')
  with pytest.raises(ValueError, match='at most one'):
    common.pick_one({'a', 'b'}, ('a', 'b'), 'cfg', required=False)


@pytest.mark.parametrize('override,message', [
    ('--config.train.num_stepz=3', 'num_stepz'),
    ('--config.train.num_steps=abc', 'num_steps'),
])
def test_cli_rejects_bad_override(tmp_path, override, message):
  proc = subprocess.run(
      [sys.executable, '-m', 'sbt_jax.main', '--config', 'configs/titok_fmnist.py:runlocal',
       '--workdir', str(tmp_path / 'w'), override],
      capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert not (tmp_path / 'w' / 'checkpoints').exists()


@pytest.mark.parametrize('variant,tokens,width', [('s128', 128, 512), ('b64', 64, 768),
                                                  ('l32', 32, 1024)])
def test_imagenet_configs_match_the_paper_sizes(variant, tokens, width):
  from configs import titok_imagenet256  # pylint: disable=g-import-not-at-top
  c = titok_imagenet256.get_config(variant)
  config_defaults.validate(c)
  assert (c.model.num_global_tokens, c.model.encoder.width, c.data.image_size) == (
      tokens, width, 256)
  with pytest.raises(ValueError, match='exactly one'):
    titok_imagenet256.get_config('s128,b64')


@pytest.mark.parametrize('module,variant', [
    ('selfboottok_fmnist', None), ('selfboottok_fmnist', 'latent'),
    ('selfboottok_fmnist', 'soft'), ('selfboottok_fmnist', 'ema'),
    ('selfboottok_fmnist', 'softlocal'),
    ('selfboottok_fmnist', 'titok16'),
    ('selfboottok_fmnist', 'aligner'), ('selfboottok_imagenet256', None),
    ('selfboottok_imagenet256', 'aligner_l'), ('selfboottok_imagenet256', 'soft,runlocal'),
    ('tatok_fmnist', None), ('tatok_imagenet256', None), ('selfboottok_photos', None),
    ('tatok_photos', None)])
def test_selfboottok_configs_validate_and_build(module, variant):
  import importlib  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from sbt_jax.models import registry  # pylint: disable=g-import-not-at-top
  c = importlib.import_module(f'configs.{module}').get_config(variant)
  if c.stage == 'aligner':
    c.aligner.tokenizer_workdir = '/some/tokenizer'
  config_defaults.validate(c)
  model = registry.build_tokenizer(c, c.aligner.model if c.stage == 'aligner' else None)
  shape = (1, c.data.image_size, c.data.image_size, c.data.channels)
  args = (0.0,) if c.model.name == 'tatok' else ()
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape),
                                             *args))['params']
  if c.model.quantizer == 'fsq':  # no codebook params; the spatial mixes instead
    assert not {'quantizer', 'local_quantizer', 'patch_quantizer'} & set(params)
    g, n = c.model.num_global_tokens, (c.data.image_size // c.model.patch_size) ** 2
    assert params['encoder']['latent_mix'].value.shape == (g, n)
    assert params['decoder']['token_mix'].value.shape[0] == n
    return
  if c.model.name == 'selfboottok':
    assert {'encoder', 'quantizer', 'local_quantizer', 'aligner', 'decoder'} <= set(params)
    width = (c.aligner.model if c.stage == 'aligner' else c.model.aligner).width
    assert params['aligner']['pos_queries'].value.shape[-1] == width
  if c.model.name == 'tatok':
    assert {'encoder', 'quantizer', 'patch_quantizer', 'aligner', 'decoder'} <= set(params)
    assert params['patch_quantizer']['codebook'].value.shape[0] == (
        c.model.tatok.patch_codebook_size)
  with pytest.raises(ValueError, match='Unknown variants'):
    importlib.import_module(f'configs.{module}').get_config('nope')


@pytest.mark.parametrize('module,variant', [('titok_imagenet256', 'bl64'),
                                            ('selfboottok_imagenet256', 'single_stage')])
def test_single_stage_recipes_follow_the_reference_and_need_convnext_weights(module, variant):
  import importlib  # pylint: disable=g-import-not-at-top
  c = importlib.import_module(f'configs.{module}').get_config(variant)
  with pytest.raises(ValueError, match='needs loss.convnext_weights='):
    config_defaults.validate(c)
  c.loss.convnext_weights = '/weights/convnext_small-0c510722.pth'
  config_defaults.validate(c)
  assert (c.loss.perceptual, c.loss.perceptual_weight, c.loss.l1_weight) == (
      'lpips-convnext_s-1.0-0.1', 1.1, 0.0)
  a = c.adversarial
  assert (a.enabled, a.start_step, a.weight, a.lecam_weight, a.optim.learning_rate) == (
      True, 200_000, 0.1, 0.001, 1e-4)
  assert (c.train.num_steps, c.data.global_batch_size) == (650_000, 1024)
  config_defaults.validate(importlib.import_module(f'configs.{module}').get_config(
      f'{variant},runlocal'))  # LPIPS only: no ConvNeXt file needed


@pytest.mark.parametrize('module,variant,trainable,w_generate', [
    ('titok_imagenet256', 'b64,finetune', 'decoder', 0.0),
    ('selfboottok_imagenet256', 'finetune', 'decoder,aligner', 1.0)])
def test_imagenet_finetune_is_the_reference_stage_2(module, variant, trainable, w_generate):
  c = importlib.import_module(f'configs.{module}').get_config(variant)
  c.loss.convnext_weights = '/weights/convnext_small-0c510722.pth'
  with pytest.raises(ValueError, match='set train.init_from='):
    config_defaults.validate(c)
  c.train.init_from = 'gs://bucket/stage1'
  c.loss.convnext_weights = ''
  with pytest.raises(ValueError, match='needs loss.convnext_weights='):
    config_defaults.validate(c)
  c.loss.convnext_weights = '/weights/convnext_small-0c510722.pth'
  config_defaults.validate(c)
  # configs/training/TiTok/stage2/titok_b64.yaml of bytedance/1d-tokenizer
  assert (c.train.trainable, c.loss.w_generate) == (trainable, w_generate)
  assert (c.loss.perceptual, c.loss.perceptual_weight, c.loss.l1_weight, c.loss.l2_weight,
          c.loss.quantizer_weight) == ('convnext_s', 0.1, 0.0, 1.0, 0.0)
  a = c.adversarial
  assert (a.enabled, a.start_step, a.weight, a.lecam_weight, a.optim.learning_rate) == (
      True, 20_000, 0.01, 0.001, 1e-4)
  assert (c.train.num_steps, c.optim.warmup_steps, c.optim.learning_rate, c.optim.b2) == (
      500_000, 5_000, 1e-4, 0.999)
  local = importlib.import_module(f'configs.{module}').get_config(f'{variant},runlocal')
  local.train.init_from = '/runs/stage1'
  config_defaults.validate(local)  # LPIPS only: no ConvNeXt file needed
  assert local.train.trainable == trainable and local.adversarial.start_step == 1


def test_fmnist_adversarial_variants():
  from configs import selfboottok_fmnist  # pylint: disable=g-import-not-at-top
  adv = selfboottok_fmnist.get_config('titok,adv')
  config_defaults.validate(adv)
  assert adv.adversarial.enabled and adv.adversarial.start_step == 250
  tune = selfboottok_fmnist.get_config('titok,finetune')
  with pytest.raises(ValueError, match='set train.init_from='):
    config_defaults.validate(tune)
  tune.train.init_from = '/runs/titok8'
  config_defaults.validate(tune)
  assert (tune.train.trainable, tune.adversarial.start_step) == ('decoder', 0)


@pytest.mark.parametrize('changes,match', [
    ({'model.layout': 'torch'}, "model.layout='torch'"),
    ({'model.decoder_patch_size': 2}, 'needs a reference model.layout'),
    ({'model.layout': 'reference_legacy'}, 'decoder patch size must be 16, got 4'),
    ({'model.layout': 'reference', 'model.decoder_patch_size': 5}, 'decoder_patch_size=5'),
    ({'model.layout': 'reference', 'model.colour_levels': 4}, 'colour_levels=4'),
    ({'model.layout': 'reference', 'model.spatial_mix': True}, 'spatial_mix=True'),
    ({'model.layout': 'reference', 'model.quantizer': 'fsq', 'model.codebook_size': 4096},
     "quantizer='fsq'"),
    ({'model.name': 'selfboottok', 'model.vq_l2_norm': False}, 'is a TiTok setting'),
    ({'model.name': 'tatok', 'model.layout': 'reference'}, 'is a TiTok setting'),
])
def test_reference_layout_settings_are_validated(changes, match):
  c = config_defaults.base_config()
  for key, value in changes.items():
    section, field = key.split('.')
    c[section][field] = value
  with pytest.raises(ValueError, match=match):
    config_defaults.validate(c)


@pytest.mark.parametrize('changes,match', [
    ({'layout': 'bert'}, "generator.layout='bert'"),
    ({'type': 'ar', 'layout': 'reference_bert'}, 'is a MaskGIT setting'),
    ({'sampling.procedure': 'torch'}, "generator.sampling.procedure='torch'"),
    ({'type': 'ar', 'sampling.procedure': 'reference'}, 'is a MaskGIT setting'),
    ({'sampling.procedure': 'reference', 'sampling.temperature': 0.7},
     'has no softmax temperature'),
])
def test_reference_generator_settings_are_validated(changes, match):
  from configs import generator_fmnist  # pylint: disable=g-import-not-at-top
  c = generator_fmnist.get_config()
  c.generator.tokenizer_workdir = '/some/tokenizer'
  for key, value in changes.items():
    section = c.generator
    *path, field = key.split('.')
    for p in path:
      section = section[p]
    section[field] = value
  with pytest.raises(ValueError, match=match):
    config_defaults.validate(c)
