"""Use cases: each public function is one unit of work (services own the transactions).

Services import the domain, the models and the ports they need (what they ask of the outside
world); never an adapter, a blueprint, a CLI command, a task or the bridge. `make lint` checks
it (import-linter contracts in pyproject.toml).
"""
