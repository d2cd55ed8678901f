"""What every synthesis method's training shares: the state (models and optimizers by name, the
EMA copy of the sampled model), the loop, its resumable state file, batches, the stage's progress
line and summary. Knows no method: each supplies its `Update` and builds its `TrainState`."""
