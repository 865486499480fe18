"""Which endpoints get the stand-ins' dummy keys (shared.aws.local_credentials)."""

from __future__ import annotations

import pytest

from shared.aws import local_credentials


def test_a_local_stand_in_gets_dummy_keys_and_aws_the_default_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    assert local_credentials("http://127.0.0.1:4566")["aws_access_key_id"] == "belfry-local"
    assert local_credentials(None) == {}
    assert local_credentials("https://cognito-idp.eu-west-1.amazonaws.com/") == {}
    monkeypatch.setenv("AWS_PROFILE", "dev")
    assert local_credentials("http://127.0.0.1:4566") == {}
