"""The personalization service: ``personalign serve`` (app), its store (db, store), derived data (derived)."""
