"""The WebhookRepository contract on every backend, its parity machine, and the DTOs' rules."""

from __future__ import annotations

from typing import Any

import pytest

from aicmo.errors import ValidationError
from aicmo.testing.webhooks import (
    WebhookParityMachine,
    WebhookRepositoryContract,
    make_notification,
    make_subscription,
)
from aicmo.webhooks import mask_secret

from .conftest import parity_test_cases


class TestWebhookRepository(WebhookRepositoryContract):
    pass


TestWebhookParitySQLite, TestWebhookParityPostgres = parity_test_cases(WebhookParityMachine)


class TestWebhookDtos:
    @pytest.mark.parametrize(
        ("changes", "path", "message"),
        [
            ({"url": "ftp://example.com/x"}, "url", "http:// or https://"),
            ({"url": "example.com/x"}, "url", "http:// or https://"),
            ({"url": "https:///x"}, "url", "has no host"),
            ({"url": "https://user:pw@example.com/"}, "url", "user name or password"),
            ({"url": "https://example.com/#frag"}, "url", "#fragment"),
            ({"url": "https://example.com:port/"}, "url", "not a valid URL"),
            ({"url": "https://exa mple.com/"}, "url", "spaces or control"),
            ({"url": "https://example.com/" + "a" * 2100}, "url", "at most 2048"),
            ({"url": ""}, "url", "must not be empty"),
            ({"events": ()}, "events", "is empty"),
            ({"events": ("run.done",)}, "events[0]", "unknown event 'run.done'"),
            ({"events": ("run.completed", "run.completed")}, "events", "more than once"),
            ({"events": "run.completed"}, "events", "expected a sequence"),
            ({"secret": "short"}, "secret", "at least 16"),
            ({"secret": 1234567890123456}, "secret", "expected text"),
        ],
    )
    def test_invalid_subscriptions_are_refused_naming_the_field(
        self, changes: dict[str, Any], path: str, message: str
    ) -> None:
        with pytest.raises(ValidationError) as info:
            make_subscription(**changes)
        assert [p for p, _ in info.value.errors] == [path]
        assert message in str(info.value)

    def test_the_secret_never_shows_in_a_repr(self) -> None:
        subscription = make_subscription(secret="top-secret-value-1234")
        assert "top-secret" not in repr(subscription)
        assert "****1234" in repr(subscription)
        assert mask_secret("0123456789abcdef") == "****cdef"
        assert mask_secret("short-one") == "****"

    @pytest.mark.parametrize(
        ("changes", "path"),
        [
            ({"event": "package.sent"}, "event"),
            ({"status": "LOST"}, "status"),
            ({"attempts": -1}, "attempts"),
            ({"payload": [1, 2]}, "payload"),
            ({"payload": {"x": float("nan")}}, "payload.x"),
            ({"lease_token": 2**63}, "lease_token"),
            ({"notification_id": ""}, "notification_id"),
        ],
    )
    def test_invalid_notifications_are_refused_naming_the_field(
        self, changes: dict[str, Any], path: str
    ) -> None:
        with pytest.raises(ValidationError) as info:
            make_notification(**changes)
        assert [p for p, _ in info.value.errors] == [path]
