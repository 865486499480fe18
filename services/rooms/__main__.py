"""`python -m services.rooms`: the rooms service alone."""

from __future__ import annotations

from services.rooms.bootstrap import definition
from shared.service import serve

if __name__ == "__main__":
    serve([definition])
