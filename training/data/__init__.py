"""Data: the split and samples, extra sources and pool formats, the v2 split, sampling and augmentation."""
