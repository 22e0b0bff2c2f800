"""Pure values and decisions: stdlib only, no I/O."""
