"""Training augmentations: geometric (flips, resizes, jitter) and photometric (exposure, contrast, ...)."""
