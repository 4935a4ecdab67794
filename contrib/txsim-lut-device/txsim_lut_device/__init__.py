"""txsim plugin: a device described by measured conductance-versus-pulse curves (a lookup table)."""

from txsim_lut_device.measurement import (
    Curve,
    DeviceData,
    estimate_sigma_step,
    example_path,
    load_device_data,
)
from txsim_lut_device.models import LUTMapping, LUTMappingParams, LUTUpdate, LUTUpdateParams

__all__ = [
    "Curve",
    "DeviceData",
    "LUTMapping",
    "LUTMappingParams",
    "LUTUpdate",
    "LUTUpdateParams",
    "estimate_sigma_step",
    "example_path",
    "load_device_data",
]
