"""Stage registry: config.stage -> the task class the shared loop trains."""


def get_task(stage: str):
  if stage == 'tokenizer':
    from sbt_jax.trainers import tokenizer  # pylint: disable=g-import-not-at-top
    return tokenizer.TokenizerTask
  if stage == 'aligner':
    from sbt_jax.trainers import aligner  # pylint: disable=g-import-not-at-top
    return aligner.AlignerTask
  if stage == 'generator':
    from sbt_jax.trainers import generator  # pylint: disable=g-import-not-at-top
    return generator.GeneratorTask
  raise ValueError(f'Unknown config.stage={stage!r}; known: tokenizer, aligner, generator')
