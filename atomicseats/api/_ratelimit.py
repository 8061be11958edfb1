"""Per-user rate limits, for routes where the client's address is the wrong key (many
buyers share one NAT; one buyer has many addresses) and the user is known.

The counter lives where Flask-Limiter's per-address limits count (RATELIMIT_STORAGE_URI:
the shared Redis when configured), one atomic increment per request: no X-RateLimit
headers, whose window read would be a second round trip on the booking hot path. The
strategy is this app's own (Flask-Limiter keeps one per process, of the last app bound).
"""

from __future__ import annotations

import functools
import logging
import math
import time

from flask import current_app
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger(__name__)

_STRATEGY_KEY = "atomicseats.user_rate_limits"


def limit_per_user(setting: str, scope: str, user_id: int) -> None:
    """Count one request of `user_id` against the config's `setting` ("120 per minute");
    429 with Retry-After once a window is used up. Fails open if the storage is down:
    the rate limit is protection, not a reason to refuse a buyer."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    strategy = _strategy()
    identity = str(user_id)
    for rate in _rates(config[setting]):
        try:
            is_allowed = strategy.hit(rate, scope, identity)
        except Exception as error:  # the storage's own errors (Redis down): fail open
            log.warning("ratelimit.storage_failed", extra={"scope": scope, "error": str(error)[:200]})
            return
        if not is_allowed:
            reset_at = strategy.get_window_stats(rate, scope, identity).reset_time
            raise TooManyRequests(retry_after=max(1, math.ceil(reset_at - time.time())))


def _strategy() -> FixedWindowRateLimiter:
    extensions = current_app.extensions
    strategy = extensions.get(_STRATEGY_KEY)
    if strategy is None:  # two racing first requests may both build one: one is kept, both count alike
        strategy = FixedWindowRateLimiter(storage_from_string(current_app.config["RATELIMIT_STORAGE_URI"]))
        extensions[_STRATEGY_KEY] = strategy
    return strategy


@functools.cache
def _rates(setting_value: str) -> list[RateLimitItem]:
    return parse_many(setting_value)
