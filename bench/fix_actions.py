"""How many of the demo's DM items can be put right from Slack itself? Read from the outbox.

    .venv/bin/python bench/fix_actions.py [DEMO_DIR]   (default .demo, after `make demo`)

Prints, per day of the demo and per workflow an item is filed under: the DM digest items, and
how many carry a fix action (a button of the workflow's ``fix``, such as "Update tech
evaluation"); then the meeting reminders, how many suggest an opportunity, and how many of those
carry the button. The target (issue 23): every item of a workflow whose YAML entry declares a
fix. Figures, not a test; exits 1 when such an item lacks its button.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def scan(outbox: Path, runs: list[str]) -> dict:
    """Counts of one day's runs: items by workflow, those with a fix, reminders."""
    items: Counter = Counter()
    fixed: Counter = Counter()
    reminders = suggested = with_button = 0
    for run in runs:
        path = outbox / run / "calls.jsonl"
        if not path.exists():
            continue
        shown: dict[tuple[str, str], str] = {}  # (channel, record Id) -> the workflow it is filed under
        fixes: set[tuple[str, str]] = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            call = json.loads(line)
            if call["method"] != "chat.postMessage":
                continue
            channel = str(call["args"].get("channel"))
            for b in call["args"].get("blocks") or []:
                block_id = str(b.get("block_id") or "")
                if block_id.startswith("item:"):
                    values = [o.get("value", "") for o in (b.get("accessory") or {}).get("options") or []]
                    shown[(channel, block_id[5:])] = values[0].split("|")[1] if values else "?"
                elif block_id.startswith("fix:"):
                    fixes.add((channel, block_id[4:]))
                elif b.get("type") == "actions" and any(e.get("action_id") == "sa_log_it" for e in b.get("elements") or []):
                    reminders += 1
                    buttons = [e for e in b["elements"] if e.get("action_id") == "sa_update_tech_eval"]
                    value = next((e.get("value", "") for e in b["elements"] if e.get("action_id") == "sa_log_it"), "")
                    parts = value.split("|")
                    suggested += len(parts) == 5 and parts[4].startswith("006")
                    with_button += bool(buttons)
        for key, wid in shown.items():
            items[wid] += 1
            fixed[wid] += key in fixes
    return {"items": items, "fixed": fixed, "reminders": reminders, "suggested": suggested, "with_button": with_button}


def main(argv: list[str]) -> int:
    from fixed_claims import demo_root  # beside this file

    root = demo_root(argv)
    if root is None:
        return 2
    from sa_hygiene.contract.config import load_config

    cfg = load_config()
    declared = {wid for wid, wf in cfg.workflows.items() if wf.fix}
    missing = 0
    for entry in json.loads((root / "outbox" / "days.json").read_text(encoding="utf-8")):
        c = scan(root / "outbox", entry["runs"])
        total, with_fix = sum(c["items"].values()), sum(c["fixed"].values())
        of_fix = sum(n for w, n in c["items"].items() if w in declared)
        print(f"{entry['day']}: {total} DM items, {with_fix} with a fix action; "
              f"{sum(c['fixed'][w] for w in declared)}/{of_fix} of the workflows that declare a fix")  # fmt: skip
        for wid in sorted(c["items"]):
            print(f"    {wid:15} {c['fixed'][wid]:4}/{c['items'][wid]:<4}" + ("  (fix declared)" if wid in declared else ""))
        print(f"    meeting reminders: {c['reminders']}, {c['suggested']} suggesting an opportunity, "
              f"{c['with_button']} with 'Update tech evaluation'")  # fmt: skip
        missing += sum(c["items"][w] - c["fixed"][w] for w in declared) + c["suggested"] - c["with_button"]
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
