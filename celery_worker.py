"""Celery entry point: `celery -A celery_worker worker -Q <queues>` and `celery -A celery_worker beat`.

The worker consumes the allocation queue of every booking-requests partition
(alloc.p0 … alloc.pN-1), the notifications queue and the maintenance queue;
`flask worker-queues` prints that list for the deployment's partition count.
"""

from celery import signals

from atomicseats import create_app
from atomicseats.adapters.metrics import serve_metrics

flask_app = create_app()
celery = flask_app.extensions["celery"]


@signals.worker_init.connect
def _serve_metrics(**_kwargs):
    """The worker's metrics (its pool processes' too) on METRICS_PORT, from its main process."""
    serve_metrics(flask_app)
