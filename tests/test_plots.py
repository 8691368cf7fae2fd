"""campaign_report to=png: real PNGs (decoded, not just sniffed) that change with the
data, sent over MCP as image content; plot and run only with to=png."""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest
from PIL import Image

from fastmcp import Client

from mcp_helpers import stdio_session
from sotalab.server.app import build_server
from sotalab.tools.errors import InvalidInput, LabError
from tinynet_lab import TinynetCampaign

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return TinynetCampaign(tmp_path_factory.mktemp("plots"))


def picture(result: dict) -> tuple[dict, np.ndarray]:
    (image,) = result["images"]
    png = base64.b64decode(image["data"])
    assert len(png) == image["bytes"]
    decoded = Image.open(io.BytesIO(png))
    decoded.load()  # a truncated or corrupt PNG fails here
    assert decoded.format == "PNG" and decoded.size == (image["width"], image["height"])
    return image, np.asarray(decoded.convert("RGB"))


def png(call, campaign: int, **arguments) -> dict:
    return call("campaign_report", campaign=campaign, to="png", **arguments)


def test_plots_are_valid_pngs_that_change_with_the_data(campaign):
    progress_before = picture(png(campaign.call, campaign.id))
    lineage_before = picture(png(campaign.call, campaign.id, plot="lineage"))
    assert progress_before[0]["title"].endswith("progress")
    # Same data, same picture: the PNG carries no timestamp.
    assert png(campaign.call, campaign.id)["images"][0]["data"] == progress_before[0]["data"]

    campaign.trial("honest_normalise")
    progress_after = picture(png(campaign.call, campaign.id))
    lineage_after = picture(png(campaign.call, campaign.id, plot="lineage"))
    assert progress_after[0]["data"] != progress_before[0]["data"]
    assert progress_after[1].shape == progress_before[1].shape
    assert (progress_after[1] != progress_before[1]).any(axis=2).mean() > 0.005  # visibly different pixels
    assert lineage_after[0]["height"] > lineage_before[0]["height"]  # one more row in the tree


def test_run_telemetry_plot(campaign):
    run = campaign.call("run_wait", campaign=campaign.id, limit=1)["runs"][0]
    result = png(campaign.call, campaign.id, plot="telemetry", run=run["id"])
    assert result["run"] == run["id"]
    image, pixels = picture(result)
    assert pixels.std() > 0  # something is drawn
    default = png(campaign.call, campaign.id, plot="telemetry")
    assert default["run"] == run["id"]  # the latest run when none is named


def test_bad_plot_requests_say_what_to_do(campaign, lab, call):
    with pytest.raises(LabError, match="has no run 999999"):
        png(campaign.call, campaign.id, plot="telemetry", run=999999)
    with pytest.raises(LabError, match="no campaign with id 424242"):
        png(campaign.call, 424242)
    empty = call("campaign_create", name="empty", objective={"metric": "acc", "direction": "max"},
                 evaluator={"command": ["true"], "metrics": [{"name": "acc", "regex": "acc=(.*)"}]})["id"]
    with pytest.raises(LabError, match="has no runs yet") as info:
        png(call, empty, plot="telemetry")
    assert "trial_evaluate" in str(info.value)
    picture(png(call, empty))  # nothing scored yet: still a picture, not an error
    picture(png(call, empty, plot="lineage"))


def test_plot_and_run_only_choose_a_picture_with_to_png(campaign):
    refused = [({"to": "files", "plot": "lineage"}, "only to=png"),
               ({"to": "mlflow", "plot": "telemetry"}, "only to=png"),
               ({"run": 1}, "only to=png"),  # to defaults to files
               ({"to": "mlflow", "run": 1}, "only to=png"),
               ({"to": "png", "run": 1}, "plot=progress draws the whole campaign"),
               ({"to": "png", "plot": "lineage", "run": 1}, "pass plot=telemetry")]
    for arguments, says in refused:
        with pytest.raises(InvalidInput, match=says):
            campaign.call("campaign_report", campaign=campaign.id, **arguments)
    assert not campaign.lab.path("reports", f"campaign-{campaign.id}").exists()  # refused before writing


def test_over_mcp_the_picture_is_image_content(campaign):
    async def plot():
        async with stdio_session(campaign.lab.home) as session:
            return await session.call_tool("campaign_report", {"campaign": campaign.id, "to": "png",
                                                                "plot": "lineage"})

    result = asyncio.run(plot())
    assert not result.is_error
    kinds = [block.type for block in result.content]
    assert kinds == ["text", "image"]
    image = result.content[1]
    assert image.mime_type == "image/png" and base64.b64decode(image.data)[:8] == b"\x89PNG\r\n\x1a\n"
    # The base64 travels once, as the image; the JSON keeps the picture's description.
    assert result.structured_content["images"][0]["data"] is None
    assert image.data not in result.content[0].text


def test_in_memory_client_gets_the_png_as_image_content_and_the_report_without(campaign):
    async def scenario():
        async with Client(build_server(campaign.lab)) as client:
            listed = {t.name: t for t in await client.list_tools()}
            assert "campaign_plot" not in listed
            report = listed["campaign_report"]
            assert report.annotations.idempotent_hint is True and report.annotations.read_only_hint is False
            assert report.inputSchema["properties"]["to"]["enum"] == ["files", "mlflow", "png"]
            pictured = await client.call_tool("campaign_report", {"campaign": campaign.id, "to": "png",
                                                                  "plot": "progress"})
            refused = await client.call_tool("campaign_report", {"campaign": campaign.id, "plot": "lineage"},
                                             raise_on_error=False)
            return pictured, refused

    pictured, refused = asyncio.run(scenario())
    assert [block.type for block in pictured.content] == ["text", "image"]
    assert base64.b64decode(pictured.content[1].data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert pictured.structured_content["kind"] == "progress"
    assert pictured.structured_content["images"][0]["data"] is None
    assert refused.is_error and "only to=png" in refused.content[0].text


def test_gpu_telemetry_gets_its_own_panel():
    """No GPU here: the series as the NVML sampler writes it (tools/runs/telemetry.py),
    with two GPUs, stands in for one."""
    from sotalab.tools.plots import telemetry_png
    from sotalab.tools.runs.telemetry import CPU_FIELDS, GPU_FIELDS

    fields = CPU_FIELDS + [f"gpu{i}_{f}" for i in (0, 1) for f in GPU_FIELDS]
    points = [[t, 50.0, 100.0 + t, 0, 0, 1] + [g * 10 + t, 1000 + 50 * t, 900, 200, 60, 1400, 0] * 2
              for t in range(30) for g in [t % 3]]
    cpu_only = Image.open(io.BytesIO(telemetry_png({"fields": CPU_FIELDS, "points": [p[:6] for p in points]}, 1)))
    with_gpus = Image.open(io.BytesIO(telemetry_png({"fields": fields, "points": points}, 1)))
    assert with_gpus.size[1] == 2 * cpu_only.size[1]
