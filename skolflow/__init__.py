"""skolflow: Prefect pipelines for Swedish and Norwegian school data."""
