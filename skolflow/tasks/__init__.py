"""Prefect tasks and the plain steps they wrap."""
