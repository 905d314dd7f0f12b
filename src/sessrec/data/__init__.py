"""Data: window discovery, parquet → tensors, the bundled sample data set."""
