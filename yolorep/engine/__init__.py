"""Training, validation, prediction, export and benchmarking; each module is imported by what uses it."""
