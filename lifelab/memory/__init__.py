"""Active memory (columnar) and archives."""
