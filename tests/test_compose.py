"""docker-compose.yml, the Dockerfile, .dockerignore and .env.example (issue 11 point 4).

Docker cannot run on these machines, so the deployment is checked the way it can be: the
compose file is parsed (PyYAML) and validated against the Compose Specification's JSON schema
(tests/vendor/compose-spec.json, with its commit), then held to what a first `docker compose
up` needs: a writable beat schedule, Kafka's log on its volume, topics created with the
partition counts of atomicseats/names.py before anything uses them, worker queues from `flask
worker-queues`, Flower and the mail catcher kept to localhost (Flower with a password),
pinned images, no local file in the image, every setting in .env.example."""

from __future__ import annotations

import ast
import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml

from atomicseats import names

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).resolve().parent / "vendor" / "compose-spec.json"
APP_SERVICES = ("migrate", "kafka-topics", "api", "bridge", "worker", "mailer", "beat", "flower")
# An image tag names a release, never a moving line: PostgreSQL's major.minor (15.13), others'
# major.minor.patch (a digest may follow).
PINNED_IMAGE = re.compile(r"^[a-z0-9./_-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?(@sha256:[0-9a-f]{64})?$")
INTERPOLATED = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")
CONFIG_READERS = {
    "env_str",
    "env_int",
    "env_bool",
    "env_url",
    "env_rate_limit",
    "env_http_url",
    "env_origins",
    "require_env",
    "get",
}


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys without a word; Compose refuses the file."""

    def construct_mapping(self, node, deep=False):
        keys = [key.value for key, _value in node.value if key.tag != "tag:yaml.org,2002:merge"]
        duplicates = {key for key in keys if keys.count(key) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {duplicates}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


@cache
def compose() -> dict:
    return yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=UniqueKeyLoader)  # noqa: S506 (UniqueKeyLoader is a SafeLoader)


def test_a_key_twice_in_one_mapping_is_refused():
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate keys"):
        yaml.load("a:\n  b: 1\n  b: 2\n", Loader=UniqueKeyLoader)  # noqa: S506 (UniqueKeyLoader is a SafeLoader)


def service(name: str) -> dict:
    return compose()["services"][name]


def command_text(name: str) -> str:
    return " ".join(service(name)["command"])


def schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [f"{'/'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(document)]


def test_the_compose_file_is_valid_against_the_compose_specification():
    assert schema_errors(compose()) == []
    # Negative controls: the schema does catch a misspelt key and a wrong type.
    broken = copy.deepcopy(compose())
    broken["services"]["api"]["port"] = ["5000:5000"]
    broken["services"]["redis"]["healthcheck"]["test"] = 5
    assert len(schema_errors(broken)) == 2


def test_services_start_in_an_order_that_exists():
    services = compose()["services"]
    needs = {name: set(spec.get("depends_on", {})) for name, spec in services.items()}
    assert all(needs[name] <= set(services) for name in services)
    started: set[str] = set()
    while len(started) < len(services):  # bounded: each round starts at least one, or fails
        ready = {name for name in services if name not in started and needs[name] <= started}
        assert ready, f"a dependency cycle among {sorted(set(services) - started)}"
        started |= ready


def test_every_image_is_pinned_to_a_release():
    for name, spec in compose()["services"].items():
        if "build" in spec:
            assert spec["image"] == "atomicseats:latest", name  # our own, built from the Dockerfile
            continue
        assert PINNED_IMAGE.fullmatch(spec["image"]), f"{name}: {spec['image']} is not a pinned release"
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert bases and all(PINNED_IMAGE.fullmatch(base) for base in bases), bases


def test_the_image_runs_the_api_as_api_server_sh_full_and_its_kill_bound_comes_first(tmp_path):
    """The image's command is scripts/api_server.sh full, the API server of every mode, run here
    as the image runs it: no .venv (granian from PATH, a stand-in that prints its arguments) and
    the Dockerfile's environment. It listens on every interface and kills a worker that will not
    stop (scripts/api_server.sh says why) before compose's stop_grace_period for the API and
    before scripts/platform.sh kills the API's process group."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    (command,) = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert json.loads(command) == ["bash", "scripts/api_server.sh", "full"]
    image_env = dict(
        pair.split("=", 1)
        for line in re.findall(r"^ENV (.+)$", dockerfile, flags=re.MULTILINE)
        for pair in line.split()
    )
    root = tmp_path / "app"  # the image's /app: the code, no .venv
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "api_server.sh", root / "scripts")
    path = tmp_path / "bin"
    path.mkdir()
    (path / "granian").write_text('#!/bin/sh\necho "$@"\n')
    (path / "granian").chmod(0o755)
    env = {"PATH": f"{path}:/usr/bin:/bin", **image_env}
    printed = subprocess.run(
        ["bash", "scripts/api_server.sh", "full"], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    arguments = printed.stdout.split()
    assert arguments[arguments.index("--interface") + 1] == "asgi" and arguments[-1] == "asgi:app"
    assert arguments[arguments.index("--host") + 1] == "0.0.0.0"
    assert arguments[arguments.index("--port") + 1] == "5000"
    timeout_s = int(arguments[arguments.index("--workers-kill-timeout") + 1])
    assert timeout_s < int(service("api")["stop_grace_period"].removesuffix("s"))
    (platform_stop_s,) = re.findall(
        r"^STOP_TIMEOUT=\$\{PLATFORM_STOP_TIMEOUT:-(\d+)\}$",
        (ROOT / "scripts" / "platform.sh").read_text(),
        flags=re.MULTILINE,
    )
    assert timeout_s < int(platform_stop_s)


def test_beat_keeps_its_schedule_on_a_volume_the_image_user_may_write():
    (schedule,) = [arg.split("=", 1)[1] for arg in service("beat")["command"] if arg.startswith("--schedule=")]
    directory = str(PurePosixPath(schedule).parent)
    volumes = dict(volume.split(":", 1)[::-1] for volume in service("beat")["volumes"])
    assert volumes[directory] in compose()["volumes"]  # a named volume mounted right there
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"mkdir -p {directory} && chown atomicseats {directory}" in dockerfile
    assert dockerfile.index(f"chown atomicseats {directory}") < dockerfile.index("USER atomicseats")


def test_kafka_keeps_its_log_on_the_mounted_volume_and_creates_no_topic_by_itself():
    kafka = service("kafka")
    (mount,) = [volume.split(":", 1) for volume in kafka["volumes"]]
    assert mount[0] in compose()["volumes"]
    assert kafka["environment"]["KAFKA_LOG_DIRS"] == mount[1]
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "KAFKA_NUM_PARTITIONS" not in kafka["environment"]  # counts come from names.py only
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka["environment"]["CLUSTER_ID"])  # a base64 UUID, as KRaft wants


def test_topics_are_created_from_the_names_module_before_the_api_and_the_bridge_start():
    topics = service("kafka-topics")
    assert topics["command"] == ["python", "scripts/services/kafka_ready.py", "kafka:9092", "120"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert topics["restart"] == "no"
    for name in ("api", "bridge", "worker", "mailer", "beat", "flower"):
        assert service(name)["depends_on"]["kafka-topics"] == {"condition": "service_completed_successfully"}, name
    # The script, given no topic lines, asks atomicseats/names.py (loaded by path, as in the image).
    script = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; sys.path.insert(0, 'scripts/services'); import kafka_ready; "
            "print(json.dumps(kafka_ready.names_module_topics()))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(script.stdout) == names.TOPICS
    assert service("api")["environment"]["KAFKA_PARTITIONS"] == str(names.BOOKING_REQUESTS_PARTITIONS)


@pytest.mark.parametrize("name, kind", [("worker", "allocation"), ("mailer", "notifications")])
def test_workers_take_their_queues_from_flask_worker_queues(name, kind):
    """The shell command each worker runs, executed here with `celery` replaced by `echo`:
    its queues are what `flask worker-queues` derives from names.py and KAFKA_PARTITIONS."""
    shell, flag, script = service(name)["command"]
    assert (shell, flag) == ("sh", "-c")
    assert script.startswith(f"queues=$$(flask worker-queues --kind {kind}) && exec celery ")
    assert '--queues="$$queues"' in script and not re.search(r"--queues=[a-z]", script)  # no hard-coded list
    as_the_shell_sees_it = script.replace("$$", "$").replace("exec celery", "echo celery", 1)
    environment = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "FLASK_APP": "wsgi",
        "KAFKA_PARTITIONS": "4",
    }
    result = subprocess.run(
        ["sh", "-c", as_the_shell_sees_it], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    (queues,) = re.findall(r"--queues=(\S+)", result.stdout)
    assert queues.split(",") == names.worker_queues(kind, 4)


def test_flower_and_the_mail_catcher_are_reachable_from_the_host_only_and_flower_asks_a_password():
    for name in ("flower", "mail"):
        for port in service(name)["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every address"
    assert service("flower")["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    # Flower keeps the app's settings (the merge of x-app's environment, not a replacement).
    assert service("flower")["environment"]["DATABASE_URL"] == service("api")["environment"]["DATABASE_URL"]


def test_the_image_leaves_out_secrets_local_state_and_caches():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def is_excluded(path: str) -> bool:
        excluded = False
        for pattern in patterns:  # Docker's rule: the last matching line wins, `!` re-includes
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").removeprefix("**/")
            if fnmatch.fnmatch(path, bare) or fnmatch.fnmatch(path.split("/")[-1], bare) or path.startswith(bare + "/"):
                excluded = not negated
        return excluded

    for path in (
        ".env",
        ".env.production",
        ".venv/bin/python",
        ".run/dev/app/api.log",
        ".run/test-output/screenshots/catalogue-desktop.png",
        "instance/atomicseats.db",
        ".git/HEAD",
        "atomicseats/__pycache__/models.cpython-311.pyc",
        ".pytest_cache/v/cache/lastfailed",
        ".hypothesis/examples/x",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        ".cache/pip/x",
    ):
        assert is_excluded(path), path
    for path in (".env.example", "atomicseats/names.py", "migrations/env.py", "scripts/services/kafka_ready.py"):
        assert not is_excluded(path), path


def config_variables() -> set[str]:
    """Every environment variable config.py reads (env_*("NAME", ...), os.environ.get("NAME"))."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / "config.py").read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if function in CONFIG_READERS and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def env_example_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_env_example_lists_every_variable_config_and_compose_read():
    config = config_variables()
    assert {"DATABASE_URL", "SESSION_SECRET", "COOKIE_SECURE", "PUBLIC_BASE_URL"} <= config  # the reader works
    listed = env_example_variables()
    assert config - listed == set(), "config.py reads these, .env.example does not list them"
    interpolated = set(INTERPOLATED.findall((ROOT / "docker-compose.yml").read_text()))
    assert interpolated - listed == set(), "docker-compose.yml needs these, .env.example does not list them"
    assert listed - config - interpolated == set(), ".env.example lists variables nothing reads"
    # What compose refuses to start without is left empty there, so a copy never runs unfilled.
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", (ROOT / "docker-compose.yml").read_text()))
    for variable in required:
        assert re.search(rf"^{variable}=$", (ROOT / ".env.example").read_text(), flags=re.MULTILINE), variable


def test_the_readme_says_how_to_make_the_first_admin_and_what_cookie_secure_assumes():
    deployment = (ROOT / "README.md").read_text().split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]
    assert "cp .env.example .env" in deployment
    assert "docker compose run --rm api flask users create-admin" in deployment
    assert "COOKIE_SECURE" in deployment and "TLS" in deployment
