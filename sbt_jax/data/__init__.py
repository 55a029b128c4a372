"""Input pipeline: TFDS / image-folder sources read through grain."""
