"""Training augmentations: geometric (flips, the resize to the network's input) and photometric (exposure, ...)."""
