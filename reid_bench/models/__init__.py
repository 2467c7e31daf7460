"""Methods: one module per method, each registering itself in ``registry.METHODS``."""
