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
# The API server of every mode (scripts/api_server.sh full): granian's ASGI front (asgi.py), 3
# workers x API_THREADS Flask threads, a worker that will not stop killed 10 s after a stop.
ENV API_HOST=0.0.0.0 API_PORT=5000
CMD ["bash", "scripts/api_server.sh", "full"]
