# One image for the API, the Kafka bridge, the Celery worker/beat and Flower.
# The base image is pinned to a release (tests/test_compose.py checks every image tag).
FROM python:3.11.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# The code belongs to root and is read-only to the app's user; the one directory it writes is
# celery beat's schedule (a volume in docker-compose.yml: it starts with this ownership).
RUN useradd --create-home --uid 10001 atomicseats \
    && mkdir -p /var/lib/atomicseats/beat && chown atomicseats /var/lib/atomicseats/beat
USER atomicseats
ENV ATOMICSEATS_ENV=production FLASK_APP=wsgi
EXPOSE 5000
# ASGI front (asgi.py): long polls wait on the outcome pub/sub without a thread; every other
# route runs the Flask app on API_THREADS threads per worker (as --blocking-threads did for WSGI).
# A worker still running 10 s after the stop began is killed (scripts/api_server.sh says why).
ENV API_THREADS=8
CMD ["granian", "--interface", "asgi", "--host", "0.0.0.0", "--port", "5000", "--workers", "3", "--backlog", "2048", "--backpressure", "16384", "--loop", "uvloop", "--no-ws", "--workers-kill-timeout", "10", "asgi:app"]
