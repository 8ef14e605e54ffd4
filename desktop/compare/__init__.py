"""Compare mode: two images side by side with linked view and window/level."""
