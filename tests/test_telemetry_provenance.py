"""Provenance: JSON-safe, hashed host facts, git state, stable hardware id."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from harness.telemetry import collect_provenance, hardware_id
from harness.telemetry.provenance import git_state, short_hash


def test_collect_provenance_is_json_and_hashes_host(tmp_path):
    prov = collect_provenance("cpu", cwd=tmp_path)
    text = json.dumps(prov)
    host = socket.gethostname()
    if len(host) > 3:
        assert host not in text
    assert prov["hostname_hash"] == short_hash(host)
    for key in ("git_sha", "git_dirty", "versions", "python", "os", "cpu_model", "cpu_logical_cores",
                "cpu_physical_cores", "ram_bytes", "machine_id_hash", "gpus", "gpu_driver", "cuda_driver"):
        assert key in prov
    assert set(prov["versions"]) >= {"harness", "torch", "transformers", "lm_eval"}
    assert prov["versions"]["harness"]
    assert prov["ram_bytes"] > 0 and prov["cpu_logical_cores"] >= 1
    assert prov["git_sha"] is None and prov["git_dirty"] is None  # tmp_path is no repo
    assert prov["hardware_id"] == hardware_id(prov)


def test_hardware_id_names_the_hardware_class(monkeypatch):
    monkeypatch.delenv("HARNESS_TEST_NODE_ID", raising=False)
    base = {"cpu_model": "Xeon", "cpu_logical_cores": 8, "cpu_physical_cores": 4, "ram_bytes": 1 << 34,
            "gpus": [{"name": "H200", "uuid": "GPU-a"}], "gpu_driver": "580", "machine_id_hash": "aa",
            "hostname_hash": "hh", "git_sha": "x", "python": "3.11"}
    hid = hardware_id(base)
    assert hid == hardware_id(dict(base, git_sha="y", python="3.12"))  # software does not count
    assert hid == hardware_id(dict(base, machine_id_hash="bb", hostname_hash="h2"))  # another node of the type
    assert hid == hardware_id(dict(base, gpus=[{"name": "H200", "uuid": "GPU-b"}]))  # another GPU of the model
    assert hid != hardware_id(dict(base, gpus=[{"name": "H100", "uuid": "GPU-a"}]))  # another GPU model
    assert hid != hardware_id(dict(base, gpu_driver="575"))
    assert hid != hardware_id(dict(base, cpu_model="EPYC"))
    monkeypatch.setenv("HARNESS_TEST_NODE_ID", "node-b")  # tests only: a fake kind of node
    assert hardware_id(base) != hid
    assert len(hid) == 16


def test_git_state(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git not available")
    assert git_state(tmp_path) == {"git_sha": None, "git_dirty": False}
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-q", "-m", "a")
    state = git_state(tmp_path)
    assert len(state["git_sha"]) == 40 and state["git_dirty"] is False
    (tmp_path / "a.txt").write_text("b")
    assert git_state(tmp_path)["git_dirty"] is True
