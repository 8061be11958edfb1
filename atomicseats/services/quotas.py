"""Per-user quotas: rate limits for routes where the client's address is the wrong key
(many buyers share one NAT; one buyer has many addresses) and the user is known.

A quota counts where Flask-Limiter's per-address limits count (RATELIMIT_STORAGE_URI:
the shared Redis when configured), in `limits`' fixed-window keys, so operators read
both kinds alike. On the booking hot path the request registry counts them in the round
trip that claims the request (`RequestRegistry.counts_quotas`); elsewhere, or when the
registry's Redis is not the limiter's, `charge` counts them with one increment each.
No X-RateLimit headers: their window read would be another round trip. Both ways fail
open when the store is down: the limit is protection, not a reason to refuse a buyer.
"""

from __future__ import annotations

import functools
import logging
import math
import time

from flask import current_app
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string

from atomicseats.errors import RateLimited
from atomicseats.services.contracts import Quota

log = logging.getLogger(__name__)

_STORAGE_KEY = "atomicseats.quota_storage"


def quotas_for(setting: str, scope: str, user_id: int) -> tuple[Quota, ...]:
    """The quotas the config's `setting` ("120 per minute; 10 per second") gives `user_id`;
    none while rate limits are off."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return ()
    identity = str(user_id)
    return tuple(
        Quota(rate.key_for(scope, identity), rate.amount, rate.get_expiry()) for rate in _rates(config[setting])
    )


def charge(quotas: tuple[Quota, ...]) -> None:
    """Count one request against each quota, in order; RateLimited at the first used up."""
    if not quotas:
        return
    storage = _storage()
    for quota in quotas:
        try:
            count = storage.incr(quota.key, quota.window_s)
            if count <= quota.amount:
                continue
            reset_at = storage.get_expiry(quota.key)
        except Exception as error:  # the storage's own errors (Redis down): fail open
            log.warning("ratelimit.storage_failed", extra={"key": quota.key, "error": str(error)[:200]})
            return
        raise RateLimited(math.ceil(reset_at - time.time()))


@functools.cache
def _rates(setting_value: str) -> list[RateLimitItem]:
    return parse_many(setting_value)


def _storage() -> Storage:
    extensions = current_app.extensions
    storage = extensions.get(_STORAGE_KEY)
    if storage is None:  # two racing first requests may both build one: one is kept, both count alike
        storage = storage_from_string(current_app.config["RATELIMIT_STORAGE_URI"])
        extensions[_STORAGE_KEY] = storage
    assert isinstance(storage, Storage)  # a synchronous storage URI: the request threads wait on it
    return storage
