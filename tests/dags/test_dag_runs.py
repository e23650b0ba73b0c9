"""The real DAGs for one simulated day (what `make demo` runs), then a re-run that must post nothing."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-24"


def posts(outbox: Path) -> list[dict]:
    out = []
    for path in sorted(outbox.glob("*/calls.jsonl")):
        for line in path.open():
            call = json.loads(line)
            if call["method"] == "chat.postMessage":
                out.append(call)
    return out


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    r = subprocess.run([sys.executable, "-m", "sa_hygiene", "demo", "--dir", str(root), "--as-of", AS_OF, "--scale", "0.3",
                        "--days", "1"],
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root, r.stdout


def test_every_dag_ran_and_every_region_got_one_digest(day):
    root, stdout = day
    assert stdout.count(" success ") >= 12 and "FAILED" not in stdout
    sent = posts(root / "outbox")
    keys = Counter(p["args"]["metadata"]["event_payload"]["key"] for p in sent if p["args"]["metadata"]["event_payload"]["part"] == 0)
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]
    regional = {k.split("|")[1] for k in keys if k.startswith("regional_digest|")}
    assert {"channel:#sa-activities-east-sa", "channel:#sa-activities-apj-cs", "channel:#sa-activities-emea-sa"} <= regional
    dms = [k for k in keys if k.startswith("sa_digest|user:")]
    assert dms and len({k.split("|")[1] for k in dms}) == len(dms)  # one DM digest per person and day
    assert any(k.startswith("meeting_reminder|") for k in keys)
    assert {"channel:#sa-tech-eval-start", "channel:#stage-move-02"} <= {k.split("|")[1] for k in keys if k.startswith("channel_post|")}
    # The store holds yesterday's and today's snapshot; every alert of the day's runs is kept beside them.
    assert len([p for p in (root / "store").iterdir() if p.name[:1].isdigit()]) == 2
    assert "wf-14" in stdout and "preview of every message" in stdout
    # The report of the day's snapshot, written right after it, and where to find it.
    latest = json.loads((root / "store" / "_reports" / "latest.json").read_text())
    assert latest["snapshot"] == "20261124T040000Z"
    assert f"Hygiene report: {root / 'store' / '_reports' / latest['index']}" in stdout


def test_a_rerun_posts_nothing_twice(day):
    root, _ = day
    before = len(posts(root / "outbox"))
    env = {**os.environ, "AIRFLOW_HOME": str(root / "airflow"), "SA_HYGIENE_CONFIG": str(root / "sa_hygiene.yaml"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}"}  # fmt: skip
    airflow = Path(sys.executable).with_name("airflow")
    r = subprocess.run([str(airflow), "dags", "test", "sa_regional_digest_east_sa", "2026-11-24T13:00:00+00:00"],
                       env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert len(posts(root / "outbox")) == before
