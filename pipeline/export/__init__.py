"""The export stage's work: the augmented dataset as a product (docs/export.md).

rows.py assembles it: the real training split plus the synthetic images of the configuration
evaluate chose on validation, built through the variant registry (pipeline/variants.py), or
generate's shipped set when evaluate chose none; val and test beside it, unchanged; every row
flagged real or synthetic, with its provenance. writers.py writes it in the user's format into a
folder that replaces the previous export as a whole; datasheet.py describes it.
"""
