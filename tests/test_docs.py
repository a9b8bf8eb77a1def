"""The documentation (issue 29): a README for users under 250 lines, and the docs/ site builds with
mkdocs --strict (every page in the nav, every link and anchor inside docs/ resolving)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_is_for_users_and_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 250
    text = "\n".join(lines)
    for heading in ("On your own data", "Reading the results", "The commands"):
        assert heading in text, heading


def test_the_site_builds_strict(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "commands" / "index.html").is_file()
