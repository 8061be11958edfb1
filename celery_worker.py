"""Celery worker entry point: `celery -A celery_worker worker`.

The embedded default needs no worker (the pipeline runs in-process). The Kafka
pipeline's allocation and e-mail tasks are registered here when PIPELINE=kafka.
"""

from atomicseats import create_app

flask_app = create_app()
celery = flask_app.extensions.get("celery")
