"""What deploy/Dockerfile says about the image it builds, read without a container engine,
and its environment mapped onto this machine to run its command outside a container.

Only the final stage matters: its environment, working directory, user, command,
exposed port and health check are what runs in production.
"""

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.server import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
BASE_IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH in the official Python images, which the Dockerfile extends."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Image:
    """The final stage of the Dockerfile."""

    base: str
    workdir: str = "/"
    user: str = "root"
    env: dict[str, str] = field(default_factory=dict)
    exposed: list[int] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Every instruction, its continuation lines joined, comments left out."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            parsed.append(Instruction(keyword.upper(), arguments.strip()))
    return parsed


def _expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda match: variables.get(match[1], ""), text)


def read_image(path: Path = DOCKERFILE) -> Image:
    """The final stage of ``path``; variables in ENV expand as Docker expands them."""
    parsed = instructions(path)
    last_from = max(i for i, instruction in enumerate(parsed) if instruction.keyword == "FROM")
    image = Image(base=parsed[last_from].arguments.split()[0])
    # ENV values may use build arguments and the base image's PATH.
    variables = {"PATH": BASE_IMAGE_PATH}
    for instruction in parsed[last_from + 1 :]:
        keyword, arguments = instruction.keyword, instruction.arguments
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            variables[name] = default
        elif keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                image.env[name] = variables[name] = _expand(value, variables)
        elif keyword == "WORKDIR":
            image.workdir = arguments
        elif keyword == "USER":
            image.user = arguments
        elif keyword == "EXPOSE":
            image.exposed += [int(port.split("/")[0]) for port in arguments.split()]
        elif keyword == "VOLUME":
            image.volumes += json.loads(arguments)
        elif keyword == "HEALTHCHECK":
            image.healthcheck = json.loads(arguments.split(" CMD ", 1)[1])
        elif keyword == "CMD":
            image.command = json.loads(arguments)
    return image


def image_environment(image: Image, folder: Path) -> dict[str, str]:
    """The image's environment with its paths mapped onto this machine, its volumes
    and temporary files in ``folder``, on a free port."""
    mapped = {image.workdir: str(PROJECT_ROOT)}
    mapped |= {
        volume: str(folder / volume.strip("/").replace("/", "-")) for volume in image.volumes
    }
    env = {}
    for name, value in image.env.items():
        for inside, outside in mapped.items():
            value = value.replace(inside, outside)
        env[name] = value
    # The base image's own PATH is this machine's.
    env["PATH"] = env["PATH"].replace(BASE_IMAGE_PATH, os.environ["PATH"])
    for outside in mapped.values():
        Path(outside).mkdir(parents=True, exist_ok=True)
    # What compose sets beside the image (its addresses) comes from the tests' environment.
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    beside = compose["services"]["api"].get("environment", {})
    env |= {name: os.environ[name] for name in beside if name in os.environ}
    return env | {"PORT": str(free_port()), "TMPDIR": str(folder)}
