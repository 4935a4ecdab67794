"""One abstract class per model kind: the contract that plugins implement.

Units throughout: volts (V), amperes (A), siemens (S), ohms (Ohm).
"""

from txsim_core.interfaces.adc import ADC, CurrentParts
from txsim_core.interfaces.base import Model
from txsim_core.interfaces.dac import DAC
from txsim_core.interfaces.mapping import DifferentialMapping, Mapping
from txsim_core.interfaces.solver import ArraySolver, CircuitParams, Direction
from txsim_core.interfaces.update import UpdateModel

__all__ = [
    "ADC",
    "DAC",
    "ArraySolver",
    "CircuitParams",
    "CurrentParts",
    "DifferentialMapping",
    "Direction",
    "Mapping",
    "Model",
    "UpdateModel",
]
