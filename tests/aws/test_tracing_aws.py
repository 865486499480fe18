"""AWS CLIENT spans from the aiobotocore clients `AwsClients` opens (shared/tracing.py),
against moto's DynamoDB and the Chime emulator: named `<Service>.<Operation>`,
children of the current span, errors marked with their AWS code."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared import tracing
from shared.aws import AwsClients
from shared.settings import BelfrySettings


async def test_aws_calls_are_client_spans_under_the_current_span(
    spans: InMemorySpanExporter,
    aws_settings: Callable[..., BelfrySettings],
    chime_url: str,
    test_id: str,
) -> None:
    settings = aws_settings(chime_endpoint_url=chime_url, aws_max_attempts=1)
    tracer = tracing._state.tracer
    assert tracer is not None
    async with AwsClients(settings, services=("dynamodb", "chime-sdk-messaging")) as aws:
        with tracer.start_as_current_span("handler") as handler:
            await aws.dynamodb.list_tables(Limit=1)
            with pytest.raises(ClientError):
                await aws.dynamodb.describe_table(TableName=f"{test_id}-missing")
            with pytest.raises(ClientError):
                await aws.chime_messaging.send_channel_message(
                    ChannelArn="arn:aws:chime:us-east-1:111122223333:app-instance/none/channel/none",
                    Content="hello",
                    Type="STANDARD",
                    Persistence="PERSISTENT",
                    ClientRequestToken="t-1",
                    ChimeBearer="arn:aws:chime:us-east-1:111122223333:app-instance/none/user/u",
                )
    listed, described, sent = spans.get_finished_spans()[:3]
    assert [s.name for s in (listed, described, sent)] == [
        "DynamoDB.ListTables",
        "DynamoDB.DescribeTable",
        "ChimeSDKMessaging.SendChannelMessage",
    ]
    for span in (listed, described, sent):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == handler.get_span_context().span_id
        assert span.attributes is not None
        assert span.attributes["rpc.system"] == "aws-api"
    assert listed.status.status_code is StatusCode.UNSET
    assert listed.attributes is not None
    assert listed.attributes["http.response.status_code"] == 200
    assert described.attributes is not None
    assert described.attributes["error.type"] == "ResourceNotFoundException"
    assert described.attributes["aws.dynamodb.table_names"] == (f"{test_id}-missing",)
    assert described.status.status_code is StatusCode.ERROR
    assert sent.status.status_code is StatusCode.ERROR


async def test_no_span_outside_a_trace_or_once_tracing_is_off(
    spans: InMemorySpanExporter, aws_settings: Callable[..., BelfrySettings]
) -> None:
    tracer = tracing._state.tracer
    assert tracer is not None
    async with AwsClients(aws_settings(), services=("dynamodb",)) as aws:
        await aws.dynamodb.list_tables(Limit=1)  # a background loop's call: no span
        assert spans.get_finished_spans() == ()
        with tracer.start_as_current_span("handler"):
            await aws.dynamodb.list_tables(Limit=1)
            tracing.install(None)  # the hooks stay registered, and do nothing
            await aws.dynamodb.list_tables(Limit=1)
    assert [s.name for s in spans.get_finished_spans()] == ["DynamoDB.ListTables", "handler"]
