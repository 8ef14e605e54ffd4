"""Writing the current image out: PNG/PDF export and the DICOM results (SR and heatmap SC)."""
