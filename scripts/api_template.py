"""Write infra/api-prod.json, the prod REST API's merge template, or check that it is current.

.venv/bin/python -m scripts.api_template            # check (make lint)
.venv/bin/python -m scripts.api_template --write    # after changing infra/gateway.py or prod's CORS origins
"""

from __future__ import annotations

import argparse
import json
import sys

from infra import gateway, stack


def main(argv: list[str] | None = None) -> int:
    """Write infra/api-prod.json from prod's CORS_ALLOWED_ORIGINS, or check it is current."""
    parser = argparse.ArgumentParser(prog="python -m scripts.api_template", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the file (default: check it)")
    args = parser.parse_args(argv)
    env = stack.chalice_config("prod").environment_variables
    origins = [o.strip() for o in env.get("CORS_ALLOWED_ORIGINS", "").split(",") if o.strip()]
    text = json.dumps(gateway.merge_template(origins), indent=2) + "\n"
    if args.write:
        gateway.MERGE_TEMPLATE.write_text(text)
        print(f"{gateway.MERGE_TEMPLATE.name}: written")
        return 0
    if not gateway.MERGE_TEMPLATE.is_file() or gateway.MERGE_TEMPLATE.read_text() != text:
        print(
            f"{gateway.MERGE_TEMPLATE.name} is stale: run python -m scripts.api_template --write",
            file=sys.stderr,
        )
        return 1
    print(f"{gateway.MERGE_TEMPLATE.name} matches infra/gateway.py and prod's CORS origins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
