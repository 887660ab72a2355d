from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.helpers import make_data_folder


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A temporary folder that contains the data files VALID_PROJECT points at."""
    make_data_folder(tmp_path)
    return tmp_path
