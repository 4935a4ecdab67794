"""txsim plugin: a ReRAM device and the TxSim paper's non-linear, noisy update (eq. 1)."""

from txsim_reram.models import ReRAMMapping, ReRAMMappingParams, ReRAMUpdate, ReRAMUpdateParams

__all__ = ["ReRAMMapping", "ReRAMMappingParams", "ReRAMUpdate", "ReRAMUpdateParams"]
