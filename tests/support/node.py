"""The page's own JavaScript modules run under node, for unit tests of what a page computes (no browser)."""

import json
import subprocess


def page_script_result(script: str, values: dict[str, str] | None = None) -> object:
    """Run `script` as an ES module under node and return the JSON its last console line printed.

    `values`: placeholders in `script` replaced by their text first (a module's file URL, a constant's JSON), for
    scripts written as plain strings rather than f-strings (JavaScript's own braces left as they are)."""
    for name, value in (values or {}).items():
        script = script.replace(name, value)
    run = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])
