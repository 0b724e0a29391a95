"""One module per step of the loop; each node is a plain function of (state, runtime)."""
