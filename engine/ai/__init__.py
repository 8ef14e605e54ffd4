"""The model and the per-image job: the ONNX session, the classifier and its card, the lung
model, preprocessing, the scope check, Grad-CAM, ``prepare`` / ``conclude`` and the decision.
Imports ``engine.io``, never ``engine.batch`` or ``engine.results``."""
