"""Pure functions and small classes on NumPy arrays: what every other layer builds on."""
