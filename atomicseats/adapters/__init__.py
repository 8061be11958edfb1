"""Side effects at the edge: each module implements ports that `atomicseats.services.ports`
declares (Kafka, Redis, mail, Celery, in-process stand-ins). The composition root
(`atomicseats/wiring.py`, called by create_app) chooses and wires them; services never import this package.

An adapter imports only the ports and value types the services speak
(`services.ports`, `services.contracts`), the domain, and other adapters.
"""
