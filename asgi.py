"""The ASGI app of the full-mode API (granian --interface asgi asgi:app): the long poll
served asynchronously, every other route by the same Flask app as wsgi.py."""

from atomicseats.waiting import create_asgi_app

app = create_asgi_app()
