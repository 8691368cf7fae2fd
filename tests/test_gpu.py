"""GPU checks: run only where NVML finds a GPU and torch is importable (the device
machine); everywhere else they skip with the reason. The no-GPU paths are covered in
test_runs_tools.py through NVML's real absence."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from sotalab.tools import ledger
from sotalab.tools.runs import queue
from sotalab.tools.runs.telemetry import nvml_error

pytestmark = pytest.mark.gpu

TRAIN = """
import time, torch
x = torch.randn(4096, 4096, device="cuda")
w = torch.randn(4096, 4096, device="cuda", requires_grad=True)
opt = torch.optim.SGD([w], lr=1e-6)
end = time.time() + {seconds}
while time.time() < end:
    loss = (x @ w).square().mean()
    opt.zero_grad(); loss.backward(); opt.step()
torch.cuda.synchronize()
print("loss", float(loss))
"""

HOG = """
import time, torch
blocks = [torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda") for _ in range(8)]  # 2 GiB
time.sleep(30)
"""


@pytest.fixture(autouse=True)
def need_gpu():
    error = nvml_error()
    if error:
        pytest.skip(f"no GPU here: {error}")
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed in this Python; the GPU checks train a small torch model")



def test_training_run_shows_gpu_utilisation_and_memory_of_the_run(lab, worktree, call):
    run = queue.submit(lab, queue.RunRequest(argv=[sys.executable, "-c", TRAIN.format(seconds=6)],
                                             cwd=str(worktree), gpus=1, telemetry_interval_s=0.5, wall_s=120))
    row = queue.wait(lab, run, 60)
    while row["status"] not in queue.TERMINAL:
        row = queue.wait(lab, run, 60)
    assert row["status"] == "succeeded", row["reason"]
    summary = ledger.loads(row["telemetry"])
    assert summary["gpu"] == "nvml"
    assert summary["mean_gpu_util_pct"] > 0
    assert summary["peak_gpu_memory_mb"] > 100  # attributed to the run's own processes
    assert summary["gpu_s"] > 0 and summary["energy_j"] > 0
    assert call("lab_status")["compute"]["gpus_available"] is True


def test_run_over_gpu_memory_budget_is_killed_as_gpu_oom(lab, worktree):
    run = queue.submit(lab, queue.RunRequest(argv=[sys.executable, "-c", HOG], cwd=str(worktree), gpus=1,
                                             gpu_memory_gb=0.5, telemetry_interval_s=0.5, wall_s=120))
    row = queue.wait(lab, run, 60)
    assert (row["status"], row["outcome"]) == ("failed", "gpu_oom"), row["reason"]
