"""Command-line tools that prepare files for sbt_jax (weight conversion)."""
