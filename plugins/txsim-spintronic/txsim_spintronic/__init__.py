"""txsim plugin: a spintronic (domain-wall MTJ) device with linear, stochastic updates."""

from txsim_spintronic.models import (
    SpintronicMapping,
    SpintronicMappingParams,
    SpintronicUpdate,
    SpintronicUpdateParams,
)

__all__ = [
    "SpintronicMapping",
    "SpintronicMappingParams",
    "SpintronicUpdate",
    "SpintronicUpdateParams",
]
