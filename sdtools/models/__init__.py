"""Models: checkpoint reading, architectures, the Embeddings container and extraction."""
