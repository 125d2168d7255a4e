"""Move dead-lettered upload notifications back to the ingest queue, and say how many.

    python -m scripts.redrive [--stage prod]

A notification lands in the dead-letter queue after 5 failed deliveries (the DLQ alarm fires);
once the cause is fixed, this sends each back to the ingest queue unchanged, where the trigger
starts its photo's run (derived execution names keep a notification that already started one
from starting another). Stage `local` (the default) is a running sandbox.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from infra import stack
from scripts import stage


def redrive(sqs: Any, *, source_url: str, target_url: str) -> int:
    """Move every message from `source_url` to `target_url`; return how many moved."""
    moved = 0
    while True:
        messages = sqs.receive_message(QueueUrl=source_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if not messages:
            return moved
        entries = [{"Id": str(n), "MessageBody": m["Body"]} for n, m in enumerate(messages)]
        sent = sqs.send_message_batch(QueueUrl=target_url, Entries=entries)
        failed = {f["Id"] for f in sent.get("Failed", [])}
        done = [
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
            for n, m in enumerate(messages)
            if str(n) not in failed
        ]
        if done:
            sqs.delete_message_batch(QueueUrl=source_url, Entries=done)
        moved += len(done)
        if failed:
            # Left in the dead-letter queue (visible again after its timeout): say so, do not loop on it.
            print(
                f"warning: {len(failed)} messages could not be sent back; they stay dead-lettered",
                file=sys.stderr,
            )
            return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.redrive", description=__doc__.split("\n")[0])
    stage.add_arguments(parser)
    args = parser.parse_args(argv)
    session = stage.session(args)
    outputs = stack.outputs(args.stage, session=session)  # the queues as the template named them
    source, target = outputs["DeadLetterQueueUrl"], outputs["IngestQueueUrl"]
    moved = redrive(session.client("sqs"), source_url=source, target_url=target)
    print(f"moved {moved} dead-lettered notifications back to {target.rsplit('/', 1)[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
