"""Built-in reference models, registered through the same hooks as plugins."""
