"""Celery entry point: `celery -A celery_worker worker -Q <queues>` and `celery -A celery_worker beat`.

The worker consumes the allocation queue of every booking-requests partition
(alloc.p0 … alloc.pN-1), the notifications queue and the maintenance queue;
`flask worker-queues` prints that list for the deployment's partition count.
"""

from atomicseats import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
