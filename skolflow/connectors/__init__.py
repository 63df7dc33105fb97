"""Plain client libraries and sandboxes, one package per external system. No Prefect, no settings."""
