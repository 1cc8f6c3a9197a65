"""Thin stage CLIs: parse flags, read params, call the pure core, write outputs. Snakemake and DVC call these."""
