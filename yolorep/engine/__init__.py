"""Training, validation, prediction, export, checkpoints and devices; each module is imported by what uses it."""
