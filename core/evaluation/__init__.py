"""Scores: agreement metrics (ICC, MAE, Pearson) and the dataset evaluation protocols."""
