"""`python -m services.notifier`: the notifier alone on `BELFRY_PORT`."""

from __future__ import annotations

from services.notifier.bootstrap import definition
from shared.service import serve

if __name__ == "__main__":
    serve([definition])
