"""Pure domain core: stdlib only, no Flask, SQLAlchemy, clock, I/O or randomness."""
