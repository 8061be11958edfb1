"""Choose the adapters for this app: decided here, in one place, for every mode."""

from __future__ import annotations

from flask import Flask

from atomicseats.adapters import EXTENSION_KEY, Adapters
from atomicseats.adapters.embedded import InProcessPipeline, NoAvailabilityCache


def register_adapters(app: Flask) -> None:
    pipeline_name = app.config["PIPELINE"]
    if pipeline_name != "embedded":
        raise NotImplementedError(f"pipeline {pipeline_name!r} is not available in this build")
    redis_url = app.config.get("REDIS_URL")
    if redis_url:
        from atomicseats.adapters.redis_cache import RedisAvailabilityCache, connect

        availability = RedisAvailabilityCache(connect(redis_url))
    else:
        availability = NoAvailabilityCache()
    app.extensions[EXTENSION_KEY] = Adapters(pipeline=InProcessPipeline(), availability=availability)
