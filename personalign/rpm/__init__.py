"""RPM's per-user model (features, factors, reasoning paths); the method is personalign/methods/rpm.py."""
