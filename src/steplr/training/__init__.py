"""Training: data loaders, models, the sequential reference trainer, the batched engine and work budgets."""
