"""HYDRA's factorized scorers (shared backbone, per-user heads); the method is personalign/methods/hydra.py."""
