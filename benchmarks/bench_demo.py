"""The end-to-end demo's wall time, against the bare work it has to do.

    uv run python benchmarks/bench_demo.py

Runs `sotalab demo` in a fresh lab home (first run: everything built), then again
(second run: everything reused), counts the evaluation runs the server supervised, and
times the same number of bare `python evaluate.py` calls on a copy of the example repo
in this same run: the reference for the unavoidable compute. Target: first run under
2 minutes on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sotalab.client import demo
from sotalab.tools.home import Lab


def timed_demo(home: Path, *extra: str) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = demo.main(["--home", str(home), *extra])
    if code != 0:
        raise SystemExit(f"demo failed:\n{out.getvalue()[-2000:]}")
    return time.perf_counter() - started


def bare_evaluations(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        shutil.copytree(demo.EXAMPLE / "repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
        started = time.perf_counter()
        for i in range(n):
            subprocess.run([sys.executable, "evaluate.py", "--seed", str(i % 5), "--out", "m.json"],
                           cwd=repo, check=True, capture_output=True)
        return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "lab"
        first = timed_demo(home)
        second = timed_demo(home)
        runs = Lab.open(home).db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    bare = bare_evaluations(runs)
    print(f"first run (fresh lab home)    {first:6.1f} s   {first / bare:4.2f}x the bare evaluations")
    print(f"second run (everything reused) {second:6.1f} s   {second / first:4.3f}x the first run")
    print(f"bare evaluations ({runs} runs)  {bare:6.1f} s   1x (reference)")
    print(f"target: first run < 120 s: {'pass' if first < 120 else 'FAIL'}")


if __name__ == "__main__":
    main()
