import json
import re

from lic import runinfo


def test_run_info_records_params_sha_versions_and_device(tmp_path):
    path = runinfo.write_run_info(tmp_path / "sub" / "run.json", params={"profile": "default"}, stage="x")
    info = json.loads(path.read_text())
    assert info["params"] == {"profile": "default"} and info["stage"] == "x"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", info["git_sha"])
    assert info["versions"]["torch"] == "2.14.1" and info["versions"]["compressai"] == "1.2.8"
    assert info["device"]["cpu_count"] >= 1 and "cuda_available" in info["device"]
    assert not list(tmp_path.rglob("*.tmp"))
