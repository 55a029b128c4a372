"""Golden outputs of bytedance/1d-tokenizer's MaskGIT generators (ImageBert: post-LN BERT;
UViTBert), for tests/test_official_weights.py.

Not run by the tests or CI: it needs PyTorch (CPU), transformers, einops, omegaconf,
huggingface_hub and accelerate in their own environment and a checkout of
bytedance/1d-tokenizer, whose modeling/maskgit.py it imports unchanged.

  /tmp/torchref/bin/pip install transformers   # besides reference_titok.py's packages
  /tmp/torchref/bin/python tests/golden/reference_generator.py --repo /path/to/1d-tokenizer

Each model is built from a config.json like the released ones but tiny (width 64, 2 layers
(UViT: 1 in, mid, 1 out block), 4 heads, MLP 128; 4 tokens of a 32-code tokenizer, 10
classes); weights random (tests/golden/fixture_weights.py, seed 0, loaded strict, so names
and shapes are the reference's; not stored). Stored per model: the state dict's names and
shapes; for 3 id sequences (some masked) and labels, forward() logits with the label
(cond_drop_prob=0) and with the null class (cond_drop_prob=1); and generate() ids for 4
labels without noise (randomize_temperature=0, where the procedure is deterministic) for
each guidance_decay (scale 2.0, power 3.0, 4 steps), power-cosine with
softmax_temperature_annealing, and constant and linear at scale 40 (where guidance changes
these tiny models' ids).
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
    'experiment': {'generator_checkpoint': 'fixture.bin'},
    'model': {
        'vq_model': {'codebook_size': 32, 'token_size': 8, 'use_l2_norm': True,
                     'num_latent_tokens': 4},
        'generator': {
            'model_type': 'ViT', 'hidden_size': 64, 'num_hidden_layers': 2,
            'num_attention_heads': 4, 'intermediate_size': 128, 'dropout': 0.1,
            'attn_drop': 0.1, 'num_steps': 4, 'class_label_dropout': 0.1,
            'image_seq_len': '${model.vq_model.num_latent_tokens}',
            'condition_num_classes': 10, 'randomize_temperature': 9.5, 'guidance_scale': 4.5,
            'guidance_decay': 'linear'}},
    'dataset': {'preprocessing': {'crop_size': 32}},
}
# name -> (guidance_decay, softmax_temperature_annealing, guidance_scale) of generate()
GENERATE = {'constant': ('constant', False, 2.0), 'linear': ('linear', False, 2.0),
            'power_cosine': ('power-cosine', False, 2.0),
            'power_cosine_annealed': ('power-cosine', True, 2.0),
            # a scale at which guidance changes the ids of these tiny models
            'constant_s40': ('constant', False, 40.0), 'linear_s40': ('linear', False, 40.0)}


def main():
  a = torch_reference.golden_args(__doc__, 'generator_reference.npz')
  sys.path.insert(0, a.repo)
  from modeling import maskgit  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from omegaconf import OmegaConf  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  arrays = {'hf_config': np.array(json.dumps(HF_CONFIG))}
  ids = torch.tensor([[3, 32, 7, 32], [32, 32, 32, 32], [0, 31, 5, 9]])  # 32: the mask id
  labels = torch.tensor([2, 9, 0])
  arrays['ids'], arrays['labels'] = ids.numpy(), labels.numpy()
  gen_labels = torch.tensor([1, 4, 4, 7])
  arrays['generate_labels'] = gen_labels.numpy()
  for kind, cls in (('ViT', maskgit.ImageBert), ('UViT', maskgit.UViTBert)):
    hf = json.loads(json.dumps(HF_CONFIG))
    hf['model']['generator']['model_type'] = kind
    model = cls(OmegaConf.create(hf)).eval()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    sd = fixture_weights.random_state_dict(shapes, seed=0)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    arrays[f'{kind}/shapes'] = np.array(json.dumps(shapes))
    with torch.no_grad():
      arrays[f'{kind}/cond_logits'] = model(ids, labels.clone(), cond_drop_prob=0.0).numpy()
      arrays[f'{kind}/uncond_logits'] = model(ids, labels.clone(), cond_drop_prob=1.0).numpy()
      for name, (decay, anneal, scale) in GENERATE.items():
        arrays[f'{kind}/generate_{name}'] = model.generate(
            gen_labels.clone(), guidance_scale=scale, guidance_decay=decay,
            guidance_scale_pow=3.0, randomize_temperature=0.0,
            softmax_temperature_annealing=anneal, num_sample_steps=4).numpy()
  np.savez_compressed(a.out, **arrays)
  print(f'torch {torch.__version__}; wrote {a.out}: '
        + ', '.join(f'{k} {v.shape}' for k, v in arrays.items()))


if __name__ == '__main__':
  main()
