"""The serialised moto server (see the package docstring for why)."""

from __future__ import annotations

import copy
import functools
import threading
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import jsonpath_ng.ext as jsonpath_ext
import moto.dynamodb.models as dynamodb_models
from moto.core.utils import unix_time
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs.models import SQSBackend
from waitress.server import create_server

_LOCK = threading.RLock()
_moto_transact_write_items = DynamoDBBackend.transact_write_items
_jsonpath_parse = vars(jsonpath_ext)["parse"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _SerializedApp:
    """Serve one request at a time (but SQS long polls); the whole response is
    produced under the lock."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.ReceiveMessage":
            # A long poll waits up to 20 s inside moto: under the lock it would
            # stall every other request. moto's SQS queues take concurrent
            # receives and sends (its threaded server's usual mode).
            return self._respond(environ, start_response)
        with _LOCK:
            return self._respond(environ, start_response)

    def _respond(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = self._app(environ, start_response)
        try:
            return list(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


def _deepcopy_except_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
    return value if isinstance(value, Table) else copy.deepcopy(value, memo)


_COPY_WITHOUT_TABLE_BACKUPS = types.SimpleNamespace(deepcopy=_deepcopy_except_tables)


def _touched_items(
    backend: DynamoDBBackend, transact_items: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(table, key, attributes before or None) of every item a transaction names."""
    touched = []
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            table_name = op["TableName"]
            table = backend.get_table(table_name)
            if "Item" in op:
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            current = backend.get_item(table_name, key)
        except Exception:  # noqa: S112 - moto refuses this item itself, before any change
            continue
        before = copy.deepcopy(current.to_json()["Attributes"]) if current else None
        touched.append((table_name, key, before))
    return touched


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    touched = _touched_items(self, transact_items)
    vars(dynamodb_models)["copy"] = _COPY_WITHOUT_TABLE_BACKUPS
    try:
        _moto_transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, before in reversed(touched):
            if before is None:
                try:
                    self.delete_item(table_name, key)
                except Exception:  # noqa: S112 - nothing there to take back
                    continue
            else:
                self.put_item(table_name, before)
        raise
    finally:
        vars(dynamodb_models)["copy"] = copy


_moto_lex = ConditionExpressionParser._lex_condition_expression
_LEXED: dict[str, tuple[Any, ...]] = {}


def _lex_once(self: ConditionExpressionParser) -> deque[Any]:
    """moto lexes every condition expression again, with a dozen regular
    expressions, for every item of a transaction (65 % of a 40-room claim's
    time went to that); its tokens depend on the expression text alone and are
    immutable tuples, so each text is lexed once."""
    expression = self.condition_expression or ""
    tokens = _LEXED.get(expression)
    if tokens is None:
        tokens = tuple(_moto_lex(self))
        if len(_LEXED) < 4096:
            _LEXED[expression] = tokens
    return deque(tokens)


@functools.lru_cache(maxsize=256)
def _jsonpath_once(expression: str) -> Any:
    """moto builds a new JSONPath parser (a PLY grammar) for every path of every
    event delivered to a rule's target: a third of a PutEvents call. A parsed
    path is reusable, so each is parsed once."""
    return _jsonpath_parse(expression)


def _retained(self: SQSBackend, queue_name: str, message: Any) -> bool:
    """moto renders all of a queue's attributes for every message a receive
    looks at, to read one of them (12 % of a receive-heavy run)."""
    queue = self.get_queue(queue_name)
    retain_until = int(vars(queue)["message_retention_period"]) + message.sent_timestamp / 1000
    return bool(retain_until > unix_time())


def _patch_moto() -> None:
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    ConditionExpressionParser._lex_condition_expression = _lex_once  # type: ignore[method-assign]
    vars(jsonpath_ext)["parse"] = _jsonpath_once
    SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]


def create_app() -> WsgiApp:
    _patch_moto()
    return _SerializedApp(DomainDispatcherApplication(create_backend_app))


def _server(host: str, port: int) -> Any:
    """waitress, not werkzeug's development server: werkzeug closes every
    connection after its response, so each client call paid a TCP connect (and
    a DNS look-up in a thread) on both sides; waitress keeps them alive."""
    return create_server(
        create_app(), host=host, port=port, threads=8, ident="moto", connection_limit=1000
    )


def serve(host: str = "127.0.0.1", port: int = 5000) -> None:
    _server(host, port).run()


@contextmanager
def running_aws(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The server in a background thread (the one-process local run); yields its URL."""
    server = _server(host, port)
    thread = threading.Thread(target=server.run, name="aws-emulator", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}"
    finally:
        server.close()
        for channel in list(server._map.values()):
            channel.close()
        server.task_dispatcher.shutdown(timeout=5)
        thread.join(timeout=10)
