"""`python -m services.chat`: the chat service alone on `BELFRY_PORT`."""

from __future__ import annotations

from services.chat.bootstrap import definition
from shared.service import serve

if __name__ == "__main__":
    serve([definition])
