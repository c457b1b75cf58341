"""Host-side input and output: results folders, plots, rendering, checkpoints."""
