"""Per-user rate limits, for routes where the client's address is the wrong key (many
buyers share one NAT; one buyer has many addresses) and the user is known.

The counter lives in Flask-Limiter's storage (the shared Redis when configured, like the
per-address limits), one atomic increment per request: no X-RateLimit headers, whose
window read would be a second round trip on the booking hot path.
"""

from __future__ import annotations

import functools
import logging
import math
import time

from flask import current_app
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests

from atomicseats.extensions import limiter

log = logging.getLogger(__name__)


def limit_per_user(setting: str, scope: str, user_id: int) -> None:
    """Count one request of `user_id` against the config's `setting` ("120 per minute");
    429 with Retry-After once a window is used up. Fails open if the storage is down:
    the rate limit is protection, not a reason to refuse a buyer."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    strategy = limiter.limiter
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


@functools.cache
def _rates(setting_value: str) -> list[RateLimitItem]:
    return parse_many(setting_value)
