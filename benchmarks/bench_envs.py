"""Environment benchmarks (issue: repos and environments), as ratios against
``python -m venv`` + ``pip install`` of the same spec in the same run.

    uv run python benchmarks/bench_envs.py [--rounds N]

1. Cache hit: env_build for a spec that is already built (target: under 0.2 s).
2. Warm-cache build: env_build of a fresh venv whose packages are in uv's cache
   (target: at least 10x faster than pip with a warm pip cache).
Both caches are warmed once before timing, so neither side pays for downloads.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ["six", "tomli", "attrs", "iniconfig", "packaging", "pluggy", "idna", "certifi"]


def pip_build(root: Path) -> float:
    venv = root / f"pip-{time.monotonic_ns()}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *PACKAGES], check=True,
                   stderr=subprocess.DEVNULL)  # local pip config warnings are noise here
    return time.perf_counter() - started


def lab_build(home: Path) -> tuple[float, bool]:
    from sotalab.tools.home import Lab
    from sotalab.tools.invoke import invoke

    lab = Lab.open(home)
    started = time.perf_counter()
    result = invoke(lab, "env_build", {"detect": False, "overrides": {"packages": PACKAGES}})
    elapsed = time.perf_counter() - started
    assert result["env"]["status"] == "ready", result["log_tail"]
    return elapsed, result["reused"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sotalab-bench-envs-") as tmp:
        root = Path(tmp)
        pip_build(root)                      # warm pip's cache
        lab_build(root / "warm-lab")         # warm uv's cache
        pip_times = [pip_build(root) for _ in range(args.rounds)]
        fresh = [lab_build(root / f"lab-{i}") for i in range(args.rounds)]
        assert not any(reused for _, reused in fresh)
        hits = [lab_build(root / "lab-0") for _ in range(args.rounds)]
        assert all(reused for _, reused in hits)
    pip_p50 = statistics.median(pip_times)
    build_p50 = statistics.median(t for t, _ in fresh)
    hit_p50 = statistics.median(t for t, _ in hits)
    print(f"spec: {len(PACKAGES)} packages ({', '.join(PACKAGES)}); {args.rounds} rounds, medians")
    print(f"python -m venv + pip install (warm pip cache): {pip_p50:8.3f} s   (reference)")
    print(f"env_build, fresh venv, warm uv cache:          {build_p50:8.3f} s   {pip_p50 / build_p50:6.1f}x faster"
          f"   target >= 10x: {'PASS' if pip_p50 / build_p50 >= 10 else 'FAIL'}")
    print(f"env_build, identical spec (cache hit):        {hit_p50:8.3f} s   {pip_p50 / hit_p50:6.0f}x faster"
          f"   target < 0.2 s: {'PASS' if hit_p50 < 0.2 else 'FAIL'}")


if __name__ == "__main__":
    main()
