from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.settings import BelfrySettings


@pytest.fixture
def aws_settings(
    make_settings: Callable[..., BelfrySettings], moto_url: str
) -> Callable[..., BelfrySettings]:
    def factory(**overrides: object) -> BelfrySettings:
        return make_settings(aws_endpoint_url=moto_url, **overrides)

    return factory
