"""Organiser tokens: create (printed once), list, revoke. They are stored only as a hash.

    python -m scripts.tokens create --org acme [--label "finish-line team"] [--stage prod]
    python -m scripts.tokens list --org acme [--stage prod]
    python -m scripts.tokens revoke --org acme --token-id 3f9c0a1b2c4d [--stage prod]

Stage `local` (the default) is a running sandbox. A revoked token stops working within the API's
token cache time (TOKEN_CACHE_SECONDS, 60 s by default).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from chalicelib.domain.errors import SnapRaceError
from chalicelib.domain.model import iso_utc
from chalicelib.services import auth
from scripts import stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.tokens", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["create", "list", "revoke"])
    parser.add_argument("--org", required=True, help="the organisation the token acts for")
    parser.add_argument("--label", help="what the token is for (create)")
    parser.add_argument("--token-id", help="the token to revoke (from list)")
    stage.add_arguments(parser)
    args = parser.parse_args(argv)
    table = stage.table(args)
    now = iso_utc(datetime.now(UTC))
    try:
        if args.command == "create":
            token, listing = auth.create_token(args.org, label=args.label, table=table, now=now)
            print(f"token {listing['token_id']} for organisation {args.org} (shown once; store it now):")
            print(token)
        elif args.command == "list":
            tokens = auth.list_tokens(args.org, table=table)
            if not tokens:
                print(f"organisation {args.org} has no tokens")
            for listing in tokens:
                state = f"revoked {listing['revoked_at']}" if listing["revoked_at"] else "active"
                print(f"{listing['token_id']}  created {listing['created_at']}  {state}  {listing['label']}")
        else:
            if not args.token_id:
                parser.error("revoke needs --token-id (see: list)")
            if not auth.revoke_token(args.org, args.token_id, table=table, now=now):
                print(f"error: organisation {args.org} has no token {args.token_id}", file=sys.stderr)
                return 1
            print(f"revoked token {args.token_id} of organisation {args.org}")
    except SnapRaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
