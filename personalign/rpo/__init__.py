"""RPO (Reflective Personalization Optimization): generate, then rewrite with a trained reflection model."""
