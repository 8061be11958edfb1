"""The WSGI app, and the app `flask` discovers from the repo root."""

from atomicseats import create_app

app = create_app()
