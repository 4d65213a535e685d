"""The training loop and what it stands on: the step loop, the One Cycle and the LR range test, EMA,
precision, DDP, checkpoints and the run folder's records.
"""
