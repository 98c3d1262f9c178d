"""Prediction: sources, the predictor, results and what a predict or track run writes."""
