"""Are the digests' "N fixed since your last digest" true? Checked against the demo's own org.

    .venv/bin/python bench/fixed_claims.py [DEMO_DIR]   (default .demo, after `make demo`)

Prints, per day of the demo: episodes ended (fixed vs gone once the alert state records how,
else fixed+gone), the fixed claims the digests made, how many of them name a record (a digest
names the first few, "and N more"), and how many of those are false: the record did not change
in the fields its workflow's complaint reads (``sa_hygiene.demo.claims``). The target is 0.
Figures, not a test; exits 1 when a claim is false so that a script can gate on it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def demo_root(argv: list[str]) -> Path | None:
    """The finished demo's folder (its configuration in effect), or None when there is none (said why)."""
    root = Path(argv[0] if argv else ".demo").resolve()
    if not (root / "outbox" / "days.json").exists():
        print(f"{root}: no outbox/days.json; run `make demo` (or python -m sa_hygiene demo --dir {root}) first", file=sys.stderr)
        return None
    os.environ["SA_HYGIENE_CONFIG"] = str(root / "sa_hygiene.yaml")
    return root


def main(argv: list[str]) -> int:
    root = demo_root(argv)
    if root is None:
        return 2
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.demo.claims import check_claims, claims_line

    figures = {f["day"]: f for f in json.loads((root / "outbox" / "days.json").read_text())}
    days = check_claims(root, load_config())
    for day in days:
        print(claims_line(day, figures.get(day["day"])))
        for example in day["examples"]:
            print(f"    false: {example['object']} {example['record_id']} ({', '.join(example['workflows'])}) in {example['run']}")
    return 1 if any(d["false"] for d in days) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
