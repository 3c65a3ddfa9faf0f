"""The package as pip installs it: importable without torch or keras, what needs one names the extra to install,
and one version (Cargo.toml's, which maturin gives the wheel)."""
import subprocess
import sys
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]
ROOT = PYTHON_DIR.parent


def run_without_frameworks(code: str) -> str:
    code = "import sys; sys.modules['torch'] = None; sys.modules['keras'] = None\n" + code
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(PYTHON_DIR)},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("name,extra", [("watch", "torch"), ("Scope", "torch"), ("KerasCallback", "keras")])
def test_what_needs_a_framework_names_the_extra(name: str, extra: str) -> None:
    msg = run_without_frameworks(
        f"import bnscope\ntry:\n    bnscope.{name}\nexcept ModuleNotFoundError as e:\n    print(e)\n"
    )
    assert f"bnscope.{name} needs" in msg
    assert f"pip install bnscope[{extra}]" in msg


def test_one_version_from_cargo_toml() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["maturin"]["bindings"] == "bin"
    assert project["tool"]["maturin"]["python-source"] == "python"
    assert set(project["project"]["optional-dependencies"]) >= {"torch", "keras"}
    version = run_without_frameworks("import bnscope; print(bnscope.__version__)")
    assert version in ("unknown", cargo["package"]["version"])  # "unknown": run from the source tree
