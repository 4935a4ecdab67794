"""``python -m txsim_core.bench``: the worker process of one configuration (see
:mod:`txsim_core.bench.worker`)."""

from txsim_core.bench.worker import main

main()
