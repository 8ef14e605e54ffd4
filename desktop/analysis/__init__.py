"""The analysis on screen: the dock with the probabilities and Grad-CAM controls, the result
drawn over the image, the model (choice, card, loading) and the site-adaptation dialog."""
