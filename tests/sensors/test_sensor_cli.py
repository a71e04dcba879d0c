"""``simhsi sensors list`` / ``show``."""

from __future__ import annotations

import json

from click.testing import CliRunner

from simhsi.cli.main import cli


def test_sensors_list_table_and_json():
    r = CliRunner().invoke(cli, ["sensors", "list"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].split()[:3] == ["name", "bands", "bad"]
    assert len(lines) == 9
    assert any(line.startswith("prisma ") and " 234 " in line for line in lines)
    r = CliRunner().invoke(cli, ["sensors", "list", "--json"])
    rows = json.loads(r.output)
    assert {row["name"] for row in rows} >= {"prisma", "enmap", "sentinel2b"}


def test_sensors_show_prisma_text_and_json():
    r = CliRunner().invoke(cli, ["sensors", "show", "prisma"])
    assert r.exit_code == 0, r.output
    assert "234 (402.5-2496.9 nm)" in r.output and "PLACEHOLDER" in r.output
    assert "L1 (radiance, W m-2 sr-1 um-1): DN = round((v + 0) * 100), 16 bit uint16" in r.output
    r = CliRunner().invoke(cli, ["sensors", "show", "prisma", "--json"])
    d = json.loads(r.output)
    assert d["n_bands"] == 234 and len(d["bands"]) == 234 and d["noise"]["placeholder"] is True
    r = CliRunner().invoke(cli, ["sensors", "show", "sentinel2a", "--bands"])
    assert r.exit_code == 0 and "B8A" in r.output
    assert "60 m bands: B1, B9, B10" in r.output and " m bands:" not in CliRunner().invoke(cli, ["sensors", "show", "prisma"]).output


def test_sensors_show_unknown_is_a_one_line_error():
    r = CliRunner().invoke(cli, ["sensors", "show", "landsat9"])
    assert r.exit_code == 2
    assert "error: unknown sensor 'landsat9'" in r.output
