"""Golden outputs of bytedance/1d-tokenizer's TiTok, single-stage (is_legacy=False) and
two-stage (is_legacy=True, finetune_decoder=True), for tests/test_official_weights.py.

Not run by the tests or CI: it needs PyTorch (CPU), einops, omegaconf, huggingface_hub and
accelerate in their own environment and a checkout of bytedance/1d-tokenizer, whose
modeling/titok.py it imports unchanged.

  python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch einops omegaconf \
      huggingface_hub accelerate numpy
  /tmp/torchref/bin/python tests/golden/reference_titok.py --repo /path/to/1d-tokenizer

The model is the reference's TiTok built from a config.json like its released ones, small
enough for a test: 32 x 32 images, encoder patch 8 and decoder patch 16 (separate sizes), 4
latent tokens, 32 codes of dimension 8, 'small' encoder and decoder (width 512, 8 blocks, 8
heads, as the reference fixes them). Its weights are random
(tests/golden/fixture_weights.py, seed 0, loaded with strict=True, so the names and shapes
are the reference's own); they are not stored: the test regenerates them. Stored: the
config, 3 input images (uint8), and per case ('euclid': single-stage, use_l2_norm False as
the released BL/SL; 'l2': the same with use_l2_norm True; 'legacy': two-stage, use_l2_norm
True as the released L-32/B-64/S-128, decoder patch 16): the state dict's names and shapes,
the codebook (codebook_near: the one weight that is stored), the encoder's output z, the
ids, the quantized z, the decoded images (forward) and decode_tokens(ids); 'legacy' also the proxy-code logits (the ViT decoder's output).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position
from tests.golden import fixture_weights  # pylint: disable=g-import-not-at-top,wrong-import-position

HF_CONFIG = {
    'experiment': {'tokenizer_checkpoint': 'fixture.bin', 'output_dir': 'fixture'},
    'model': {'vq_model': {
        'codebook_size': 32, 'token_size': 8, 'use_l2_norm': False, 'commitment_cost': 0.25,
        'vit_enc_model_size': 'small', 'vit_dec_model_size': 'small',
        'vit_enc_patch_size': 8, 'vit_dec_patch_size': 16, 'num_latent_tokens': 4,
        'finetune_decoder': False, 'is_legacy': False}},
    'dataset': {'preprocessing': {'crop_size': 32}},
}

# case -> changes to HF_CONFIG's model.vq_model
CASES = {
    'euclid': {},
    'l2': {'use_l2_norm': True},
    'legacy': {'use_l2_norm': True, 'is_legacy': True, 'finetune_decoder': True,
               'vit_enc_patch_size': 16},
    'vae': {'quantize_mode': 'vae'},
}


def codebook_near(z_BxTx1xG, shape, seed):
  """A codebook whose nearest codes are informative: random weights make every token's z
  share one large component, so a random codebook maps every token to the same id. Here
  each token's z (plus noise of 0.3 its spread) is a code, the other codes are random with
  the tokens' statistics, rows shuffled. Stored with the outputs; the test uses it."""
  rng = np.random.default_rng(seed)
  z_NxT = z_BxTx1xG[:, :, 0].transpose(0, 2, 1).reshape(-1, z_BxTx1xG.shape[1])
  mean, std = z_NxT.mean(0), z_NxT.std(0) + 1e-3
  near = z_NxT + 0.3 * std * rng.standard_normal(z_NxT.shape)
  rest = mean + std * rng.standard_normal((shape[0] - len(near), shape[1]))
  return np.concatenate([near, rest])[rng.permutation(shape[0])].astype(np.float32)


def main():
  a = torch_reference.golden_args(__doc__, 'titok_reference.npz')
  torch_reference.register_reference_packages(a.repo)
  sys.modules.pop('modeling', None)  # titok.py needs the real package path only
  sys.path.insert(0, a.repo)
  from modeling import titok  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  arrays = {'hf_config': np.array(json.dumps(HF_CONFIG))}
  rs = np.random.RandomState(0)
  x8 = rs.randint(0, 256, (3, 32, 32, 3)).astype(np.uint8)
  arrays['images'] = x8
  x = torch.from_numpy(x8.transpose(0, 3, 1, 2) / np.float32(255))
  for tag, changes in CASES.items():
    hf = json.loads(json.dumps(HF_CONFIG))
    hf['model']['vq_model'].update(changes)
    model = titok.TiTok(hf).eval()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    sd = fixture_weights.random_state_dict(shapes, seed=0)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    arrays[f'{tag}/shapes'] = np.array(json.dumps(shapes))
    with torch.no_grad():
      z = model.encoder(pixel_values=x, latent_tokens=model.latent_tokens)
      if changes.get('quantize_mode') == 'vae':
        posterior = model.quantize(z)  # DiagonalGaussianDistribution
        arrays[f'{tag}/z'] = z.numpy()
        arrays[f'{tag}/mean'] = posterior.mode().numpy()
        arrays[f'{tag}/kl'] = np.float32((torch.sum(posterior.kl()) / z.shape[0]).item())
        arrays[f'{tag}/decoded_from_mean'] = model.decode_tokens(posterior.mode()).numpy()
        continue
      codebook = codebook_near(z.numpy(), sd['quantize.embedding.weight'].shape, seed=1)
      model.quantize.embedding.weight.copy_(torch.from_numpy(codebook))
      arrays[f'{tag}/codebook'] = codebook
      zq, result = model.quantize(z)
      decoded, _ = model(x)
      ids = result['min_encoding_indices']
      from_ids = model.decode_tokens(ids)
      if changes.get('is_legacy'):
        arrays[f'{tag}/proxy_logits'] = model.decoder(zq).numpy()
    arrays[f'{tag}/z'] = z.numpy()
    arrays[f'{tag}/ids'] = ids.numpy()
    arrays[f'{tag}/zq'] = zq.numpy()
    arrays[f'{tag}/decoded'] = decoded.numpy()
    arrays[f'{tag}/decoded_from_ids'] = from_ids.numpy()
  np.savez_compressed(a.out, **arrays)
  print(f'torch {torch.__version__}; wrote {a.out}: '
        + ', '.join(f'{k} {v.shape}' for k, v in arrays.items()))


if __name__ == '__main__':
  main()
