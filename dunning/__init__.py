"""The `dunning` console script (`cli`, one module per command group in `commands/`) and the
demo beside it."""
