"""elicit: labels out of a language model without gold labels, and numbers that say whether they beat asking it."""

__version__ = "0.1.0"
