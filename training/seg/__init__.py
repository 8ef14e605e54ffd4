"""Lung segmentation: data, a small U-Net, training, ONNX export (``python -m training.seg``)."""
