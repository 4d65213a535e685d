"""The front end of the four commands: Hydra entry points and failure path, run folders, the config's
schema, checks and composition, resume's config merge, sweeps. Only this package and the Python API
(:mod:`resnet_cli.api`) may import Hydra or OmegaConf (``.importlinter``).
"""
