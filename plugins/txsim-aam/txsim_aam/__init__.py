"""txsim plugin ``aam``: TxSim's approximate analytical model of crossbar arrays."""

from txsim_aam.models import AAMError, AAMParams, AAMSolver, line_paths

__all__ = ["AAMError", "AAMParams", "AAMSolver", "line_paths"]
