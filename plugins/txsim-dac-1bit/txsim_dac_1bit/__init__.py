"""txsim plugin: a 1-bit DAC that streams quantized inputs bit by bit."""

from txsim_dac_1bit.models import OneBitDAC, OneBitDACParams

__all__ = ["OneBitDAC", "OneBitDACParams"]
