"""`python -m bench.counted <module> [args…]`: run `python -m <module>` counting
its AWS calls (aiobotocore's `_make_api_call`, so retries count once), by
service and operation, with the items each call carries (TransactItems, a
BatchGetItem's keys, a BatchWriteItem's requests). The counts are written as
JSON to `$BENCH_COUNTS_FILE` twice a second and at exit; a benchmark reads the
file before and after a round and divides by the messages of the round.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import threading
from collections import Counter
from typing import Any

from aiobotocore.client import AioBaseClient

CALLS: Counter[str] = Counter()
ITEMS: Counter[str] = Counter()
_original = AioBaseClient._make_api_call  # type: ignore[attr-defined]


def _items(operation: str, params: dict[str, Any]) -> int:
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", ()))
    if operation == "BatchGetItem":
        return sum(len(t.get("Keys", ())) for t in params.get("RequestItems", {}).values())
    if operation == "BatchWriteItem":
        return sum(len(r) for r in params.get("RequestItems", {}).values())
    return 1


async def _counted(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
    key = f"{self.meta.service_model.service_name}:{operation_name}"
    CALLS[key] += 1
    ITEMS[key] += _items(operation_name, api_params)
    return await _original(self, operation_name, api_params)


def dump(path: str) -> None:
    data = {"calls": dict(CALLS), "items": dict(ITEMS)}
    with open(path + ".tmp", "w") as out:
        json.dump(data, out)
    os.replace(path + ".tmp", path)


def _dumper(path: str, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        dump(path)


def main() -> None:
    path = os.environ["BENCH_COUNTS_FILE"]
    AioBaseClient._make_api_call = _counted  # type: ignore[attr-defined]
    stop = threading.Event()
    threading.Thread(target=_dumper, args=(path, stop), daemon=True).start()
    atexit.register(dump, path)
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)


def read(path: str) -> dict[str, dict[str, int]]:
    """What a counted process has written so far (empty before its first dump)."""
    try:
        with open(path) as source:
            data: dict[str, dict[str, int]] = json.load(source)
    except (OSError, ValueError):
        return {"calls": {}, "items": {}}
    return data


if __name__ == "__main__":
    main()
