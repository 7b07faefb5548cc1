"""Training and model-in-the-loop validation: the trainer, the one validator, torchrun helpers."""
