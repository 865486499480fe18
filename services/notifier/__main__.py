"""`python -m services.notifier`: the notifier alone on `BELFRY_PORT`."""

from __future__ import annotations

from shared.service import serve

from .bootstrap import definition

if __name__ == "__main__":
    serve([definition])
