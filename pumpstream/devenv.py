"""Per-install development secrets, generated into the git-ignored `.env` (standard library only, no Django).

The repository ships no usable secret. Development (`DJANGO_DEBUG=true`, which `make run`, `make test`,
`make bench` and pytest's configuration set) takes its secrets from `.env`; `scripts/setup.sh` calls
`python -m pumpstream.devenv` to add any that are missing, and the settings do the same on first use in
development, so a fresh checkout works with either. Production never generates anything: it refuses to
start without its secrets (`pumpstream/settings.py`).
"""

import fcntl
import os
import secrets
import sys
from pathlib import Path

# Each development secret and how many random bytes it gets.
DEVELOPMENT_SECRETS = {
    "DJANGO_SECRET_KEY": 50,
    "BRIDGE_INTERNAL_SECRET": 32,
}


def _keys_in(text: str) -> set[str]:
    """The variable names assigned in a `.env` text."""
    names = set()
    for line in text.splitlines():
        name, sep, _value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            names.add(name.strip().removeprefix("export ").strip())
    return names


def development_secrets_ensure(*, env_file: Path) -> list[str]:
    """Append a freshly generated value for every development secret `env_file` lacks; return their names.

    Safe when several processes start at once (an exclusive lock on the file while reading and appending).
    """
    with open(env_file, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        present = _keys_in(handle.read())
        missing = [name for name in DEVELOPMENT_SECRETS if name not in present]
        if missing:
            lines = [f"{name}={secrets.token_urlsafe(DEVELOPMENT_SECRETS[name])}" for name in missing]
            handle.write("\n# Development secrets generated for this install (never commit them)\n")
            handle.write("\n".join(lines) + "\n")
    os.chmod(env_file, 0o600)
    return missing


def main() -> int:
    """`python -m pumpstream.devenv [ENV_FILE]`: make sure the development secrets exist."""
    env_file = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / ".env"
    added = development_secrets_ensure(env_file=env_file)
    if added:
        sys.stderr.write(f"generated development secrets in {env_file}: {', '.join(added)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
