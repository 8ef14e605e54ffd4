"""Results as DICOM: the Structured Report and the heatmap secondary capture of one analysed
image (highdicom). Imports ``engine.ai`` and ``engine.io``, never ``engine.batch``."""
