"""Where an engine's outputs go wrong: node-by-node localisation against a reference executor."""
