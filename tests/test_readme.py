"""The README's Python quickstart runs as written, and its two commands exist."""

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_readme_quickstart_runs(repo, tmp_path):
    text = (repo / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    for name in ("recipes", "data"):
        (tmp_path / name).symlink_to(repo / name)
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr
    assert "torch.Size([1, 32])" in result.stdout


def test_readme_commands_exist(repo):
    text = (repo / "README.md").read_text()
    for script in ("scripts/main.sh", "scripts/test.sh"):
        assert script in text and os.access(repo / script, os.X_OK)
    assert "scripts/test.sh" in (repo / ".ci/run").read_text()
