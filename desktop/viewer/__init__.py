"""The image on screen: the zoomable view, window/level and display settings, corner text,
measurements, the DICOM tag dock, and numpy-to-QImage conversion."""
