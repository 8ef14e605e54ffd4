"""Recipes: the 1.0.0 training loop (``train``), the v2/v3 recipe (``recipe_v2``), the networks and the source adversary."""
