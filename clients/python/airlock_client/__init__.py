"""airlock_client - a small Python client for the Airlock broker.

    from airlock_client import Airlock

    with Airlock() as airlock:                  # unix:/run/airlock/broker.sock
        r = airlock.run("print(6*7)")
        print(r.reason, r.exit_code, r.stdout)  # OK 0 b'42\\n'

        with airlock.stream("for i in range(3): print(i)") as events:
            for ev in events:                   # Started, Output..., Finished
                print(ev)

RPC failures raise AirlockError(code, message) with the gRPC status name
(PERMISSION_DENIED, INVALID_ARGUMENT, UNAVAILABLE, RESOURCE_EXHAUSTED, ...).
A task that ran but failed is not an error: see Result.reason.
"""
from ._client import (Airlock, AirlockError, Finished, Output, Result, Started,
                      DEFAULT_TARGET)

__all__ = ["Airlock", "AirlockError", "Finished", "Output", "Result", "Started",
           "DEFAULT_TARGET"]
__version__ = "0.1.0"
