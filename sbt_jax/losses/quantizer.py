"""VQ terms of every codebook: codebook + commitment_cost * commitment, summed.

Each quantizer (models/quantizer.py, models/soft_quantizer.py) outputs its two terms;
a family's model passes them on as <prefix>codebook_loss / <prefix>commit_loss.
"""


def quantizer_loss(aux, books, commitment_cost: float):
  """(sum over codebooks of codebook + commitment_cost * commitment, summed commitment);
  (0, 0) without codebooks (model.quantizer='vae')."""
  total = commit_total = 0.0 if not books else None
  for book in books:
    codebook, commit = aux[f'{book.prefix}codebook_loss'], aux[f'{book.prefix}commit_loss']
    term = codebook + commitment_cost * commit
    total = term if total is None else total + term
    commit_total = commit if commit_total is None else commit_total + commit
  return total, commit_total
