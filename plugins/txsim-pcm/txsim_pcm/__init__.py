"""txsim plugin for phase-change memory (PCM) devices: a ``mapping`` and an ``update`` model."""

from txsim_pcm.models import (
    PCMMapping,
    PCMMappingParams,
    PCMUpdate,
    PCMUpdateParams,
    programming_noise_std,
)

__all__ = [
    "PCMMapping",
    "PCMMappingParams",
    "PCMUpdate",
    "PCMUpdateParams",
    "programming_noise_std",
]
