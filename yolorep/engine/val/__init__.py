"""Validation: scoring a model on a data set with pycocotools."""
