"""`python -m services.scheduler`: the scheduler alone."""

from shared.service import serve

from .bootstrap import definition

if __name__ == "__main__":
    serve([definition])
