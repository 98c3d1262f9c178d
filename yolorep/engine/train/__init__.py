"""Training: the loop (``Trainer``), its hooks and what builds and resumes a run."""
