"""The fixture notebooks run in kernels set up exactly as notebooks/conftest.py does."""
import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parents[3] / "notebooks" / "conftest.py"
_spec = importlib.util.spec_from_file_location("tplib_notebooks_conftest", _path)
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)

pytest_configure = _real.pytest_configure
pytest_runtest_setup = _real.pytest_runtest_setup
