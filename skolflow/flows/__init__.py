"""One module per pipeline, the CLI and the demo."""
