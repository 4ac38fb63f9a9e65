"""The transformer trained in context: model, training loop, checkpoints."""
