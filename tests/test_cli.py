import json
import subprocess
import sys

from lic import cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "lic.cli", *args], capture_output=True, text=True)


def test_params_prints_the_resolved_profile(capsys):
    assert cli.main(["params", "--profile", "paper"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["train"] == "div2k-train"


def test_data_list_names_every_dataset(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("kodak", "clic2020-professional-valid", "div2k-train", "tecnick", "sample"):
        assert name in out


def test_unknown_dataset_is_a_clean_error():
    r = run("data", "prepare", "kodac")
    assert r.returncode == 2
    assert "unknown dataset 'kodac'" in r.stderr and "Traceback" not in r.stderr


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("lic") or str(__import__("pathlib").Path(sys.executable).parent / "lic")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "data" in r.stdout
