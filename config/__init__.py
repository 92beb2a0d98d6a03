"""Settings read once from the environment, logging, and a worker subprocess's environment."""
