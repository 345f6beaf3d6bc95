"""Experiments: recipes, compare, the grid sweep, the Optuna search, paired results, reports and figures."""
