"""What the end-to-end scripts here share."""

import subprocess


def psql(url, sql):
    """Runs `sql` with psql on `url`; its output, trimmed."""
    out = subprocess.run(["psql", url, "-qAtc", sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"psql: {out.stderr}")
    return out.stdout.strip()
