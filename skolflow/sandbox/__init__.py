"""What every sandbox shares: the synthetic data set, fault injection, and the server runner."""
