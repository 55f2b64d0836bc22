"""Ray is an optional extra: the plain service and the CLI never import it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_service_and_the_cli_do_not_import_ray():
    code = "import sys, app.main, training.cli, training.complete; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_only_the_ray_module_names_ray():
    """No other module of the service, the training code or the store imports Ray, not even inside a function
    (`wave-complete --ray` imports training/bulk_ray.py only when asked)."""
    importing = [
        str(path.relative_to(ROOT))
        for folder in ("app", "training", "model_store")
        for path in (ROOT / folder).rglob("*.py")
        if any(line.strip().startswith(("import ray", "from ray")) for line in path.read_text().splitlines())
    ]
    assert sorted(importing) == ["app/ray_serve.py", "training/bulk_ray.py"]
