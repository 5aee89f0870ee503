"""The suite reads only the repository and `../shared` beside it: no machine path in any test or script; the
clinician guide's screenshots are in the repository."""

import re

from tests.support.processes import ROOT, SHARED

MACHINE_PATH = re.compile(r"""["'](/work|/home|/root|/tmp/[A-Za-z])[^"']*["']""")
SCANNED = ("tests", "scripts", "bench", "Makefile", "pyproject.toml", ".ci")


def scanned_files():
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file() and p.suffix in {".py", ".sh", ".toml", ""})


def test_no_test_or_script_names_a_machine_path():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in scanned_files()
        if path != ROOT / "tests" / "test_repository.py"
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if MACHINE_PATH.search(line)
    ]
    assert not offenders, "tests and scripts must use paths relative to the repository:\n" + "\n".join(offenders)


def test_the_shared_fixtures_are_found_beside_the_repository():
    fixture = SHARED / "fixtures" / "legacy-firmware.json"
    assert fixture.is_file(), f"../shared is not beside the repository ({SHARED})"


def test_every_screenshot_the_clinician_guide_shows_is_in_the_repository():
    guide = ROOT / "docs" / "clinician-guide.md"
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", guide.read_text())
    assert len(images) >= 9, f"the clinician guide shows only {len(images)} screenshots"
    missing = [image for image in images if not (guide.parent / image).is_file()]
    assert not missing, f"docs/clinician-guide.md shows images that are not in the repository: {missing}"
