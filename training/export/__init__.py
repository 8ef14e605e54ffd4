"""Export: ONNX export and cards, and the steps that rewrite a model after training (OOD, prior, view head, features, decision)."""
