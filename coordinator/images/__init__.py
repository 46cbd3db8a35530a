"""Docker images for the runners: bake targets and builds."""
