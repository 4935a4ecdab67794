"""txsim plugin ``fcm``: exact effective conductances of crossbar arrays (fast crossbar model)."""

from txsim_fcm.models import FCMParams, FCMSolver
from txsim_fcm.network import NetworkError, port_admittance, terminate

__all__ = ["FCMParams", "FCMSolver", "NetworkError", "port_admittance", "terminate"]
