"""The FCM solver passes txsim's conformance kit."""

from __future__ import annotations

from txsim_core.testing.conformance import SolverConformance


class TestFCMConformance(SolverConformance):
    name = "fcm"
    bad_params = [({"r_row": 0.0}, "r_row"), ({"workspace_bytes": 1}, "workspace_bytes")]
