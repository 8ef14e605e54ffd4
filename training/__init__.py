"""RadLens training (PyTorch). Never imported by engine/ or desktop/."""
