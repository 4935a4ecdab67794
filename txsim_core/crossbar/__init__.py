"""Crossbar arrays: configuration, model building, the array engine and its autograd functions."""
