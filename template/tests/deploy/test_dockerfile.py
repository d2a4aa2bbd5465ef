"""deploy/Dockerfile and .dockerignore, checked statically: hadolint and the image's promises."""

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.image import DOCKERFILE, PROJECT_ROOT, instructions, read_image

HADOLINT = Path(sys.executable).with_name("hadolint")
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")
# Commands that run what follows as another user, root included.
SWITCHES_USER = re.compile(r"(?<![\w-])(su|sudo|gosu|su-exec|setpriv|runuser|chroot)(?![\w-])")
ANSWERS = yaml.safe_load((PROJECT_ROOT / ".copier-answers.yml").read_text())


def test_hadolint_passes_at_its_default_threshold() -> None:
    result = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_base_image_is_the_slim_python_of_the_project() -> None:
    python_version = (PROJECT_ROOT / ".python-version").read_text().strip()
    bases = [i.arguments.split()[0] for i in instructions() if i.keyword == "FROM"]

    assert read_image().base == f"python:{python_version}-slim"
    assert bases.count(f"python:{python_version}-slim") == 2  # build and final stages


def test_dependencies_come_from_the_lock_file_before_the_code() -> None:
    steps = [(i.keyword, i.arguments) for i in instructions()]
    manifests = steps.index(("COPY", "pyproject.toml uv.lock ./"))
    install = next(n for n, (keyword, args) in enumerate(steps) if "uv sync" in args)
    code = steps.index(("COPY", "app ./app"))

    assert manifests < install < code
    assert "--frozen" in steps[install][1]
    assert "--no-dev" in steps[install][1]


def test_image_runs_as_a_numeric_non_root_user_and_group() -> None:
    user, group = read_image().user.split(":")

    assert user.isdigit()
    assert group.isdigit()
    assert 0 not in (int(user), int(group))


def test_nothing_after_the_user_switches_back_to_root() -> None:
    steps = instructions()
    final = steps[max(n for n, step in enumerate(steps) if step.keyword == "FROM") :]
    user = max(n for n, step in enumerate(final) if step.keyword == "USER")
    commands = [
        step.arguments
        for step in final[user + 1 :]
        if step.keyword in ("RUN", "CMD", "ENTRYPOINT", "HEALTHCHECK")
    ]
    entrypoint = (PROJECT_ROOT / "deploy" / "entrypoint.sh").read_text().splitlines()
    commands += [line for line in entrypoint if not line.lstrip().startswith("#")]

    assert "deploy/entrypoint.sh" in read_image().command
    assert [command for command in commands if SWITCHES_USER.search(command)] == []


def test_image_command_is_the_one_make_run_uses() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    run_recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]

    assert read_image().command == ["sh", "deploy/entrypoint.sh"]
    assert run_recipe.rstrip().endswith("sh deploy/entrypoint.sh")


def test_health_check_probes_health_on_the_exposed_port() -> None:
    image = read_image()

    assert image.exposed == [int(image.env["PORT"])]
    assert f"http://127.0.0.1:{image.env['PORT']}/health" in " ".join(image.healthcheck)


def test_artifacts_are_baked_in_under_a_fixed_path() -> None:
    image = read_image()
    copies = [i.arguments for i in instructions() if i.keyword == "COPY"]

    assert "artifacts ./artifacts" in copies
    assert image.env["APP_MODEL_DIR"] == f"{image.workdir}/artifacts"
    assert image.env["APP_MODEL_VERSION"]


def test_worker_count_is_the_answered_one() -> None:
    assert read_image().env["WEB_CONCURRENCY"] == str(ANSWERS["workers"])


@pytest.mark.parametrize("word", ["PASSWORD", "SECRET", "TOKEN", "KEY", "DATABASE_URL"])
def test_nothing_secret_is_baked_into_the_image(word: str) -> None:
    assert not [name for name in read_image().env if word in name]


def valued_variables() -> dict[str, str]:
    """Every ENV and ARG of every stage that is given a value, by name."""
    valued = {}
    for step in instructions():
        if step.keyword not in ("ENV", "ARG"):
            continue
        words = shlex.split(step.arguments)
        if step.keyword == "ENV" and "=" not in words[0]:
            words = [f"{words[0]}={' '.join(words[1:])}"]  # the legacy `ENV NAME value`
        for word in words:
            name, _, value = word.partition("=")
            if value:
                valued[name] = value
    return valued


def test_no_stage_gives_a_secret_looking_variable_a_value() -> None:
    variables = valued_variables()

    assert "MODEL_VERSION" in variables  # the ARG, with its default
    assert [name for name in variables if any(word in name.upper() for word in SECRET_WORDS)] == []


def dockerignore_excludes(path: str) -> bool:
    """Whether the build context leaves ``path`` out, by Docker's rules: the last
    matching pattern wins, ``!`` re-includes, and a folder's pattern covers its contents."""
    excluded = False
    for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


SECRET_PATHS = [
    ".env",
    ".env.production",
    "app/.env",
    "artifacts/.env.local",
    "server.key",
    "deploy/tls/server.key",
    "app/certs/client.pem",
    "secrets/api-keys.txt",
    "deploy/secrets/database-password",
]


def test_git_leaves_out_the_secrets_the_image_leaves_out(tmp_path: Path) -> None:
    """With the project's .gitignore, in a repository of its own: git's rules, by git."""
    (tmp_path / ".gitignore").write_text((PROJECT_ROOT / ".gitignore").read_text())
    for path in [*SECRET_PATHS, ".env.example"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x\n")
    subprocess.run(["git", "init", "--quiet"], cwd=tmp_path, check=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    addable = {line[3:] for line in status.splitlines()}

    assert addable == {".gitignore", ".env.example"}


@pytest.mark.parametrize(
    "path",
    [
        *SECRET_PATHS,
        ".venv/bin/python",
        ".git",
        ".git/HEAD",
        "data/predictions.db",
        "notebooks/explore.ipynb",
        "analysis.ipynb",
        "app/__pycache__/main.cpython-311.pyc",
        ".mypy_cache/3.11/app.json",
        ".pytest_cache/README.md",
        ".ruff_cache/CACHEDIR.TAG",
    ],
)
def test_build_context_leaves_out(path: str) -> None:
    assert dockerignore_excludes(path)


def test_image_copies_named_paths_never_the_whole_build_context() -> None:
    copies = [i.arguments.split() for i in instructions() if i.keyword in ("COPY", "ADD")]
    sources = [
        word
        for words in copies
        if not any(word.startswith("--from") for word in words)
        for word in words[:-1]
        if not word.startswith("--")
    ]

    assert "app" in sources
    assert [source for source in sources if source.strip("./") == "" or "*" in source] == []


def test_build_context_keeps_everything_the_image_copies() -> None:
    sources = [
        source
        for i in instructions()
        if i.keyword == "COPY" and not i.arguments.startswith("--from")
        for source in i.arguments.split()[:-1]
    ]
    model_version = read_image().env["APP_MODEL_VERSION"]

    assert sources  # the Dockerfile copies something
    kept = [*sources, f"artifacts/{model_version}/model.joblib", "app/main.py"]
    assert [path for path in kept if dockerignore_excludes(path)] == []


def test_lock_file_pins_what_the_image_installs() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    lock = (PROJECT_ROOT / "uv.lock").read_text()

    for requirement in project["dependencies"]:
        name = re.split(r"[<>=\[ ]", requirement, maxsplit=1)[0]
        assert f'name = "{name}"' in lock, f"{name} is not in uv.lock: run `uv lock`"


def test_make_builds_and_runs_the_image_of_the_version_asked_for() -> None:
    result = subprocess.run(
        ["make", "--dry-run", "docker-build", "docker-run", "MODEL_VERSION=2.0.0", "PORT=9000"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    image = f"{ANSWERS['project_slug']}:2.0.0"
    assert (
        f"docker build --file deploy/Dockerfile --build-arg MODEL_VERSION=2.0.0 --tag {image} ."
        in result.stdout
    )
    assert re.search(
        rf"^docker run --rm -p 9000:8000 .*{re.escape(image)}$", result.stdout, re.MULTILINE
    )
