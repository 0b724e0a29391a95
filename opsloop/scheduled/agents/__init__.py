"""One module per scheduled agent; `opsloop.scheduled.registry` lists them."""
