"""Evaluation: metrics, the engine-path evaluation of a model, plots, ablation tables and the site experiments."""
