"""A departmental system "built on the national SDK", as a command: calls the way SDKVXP makes them.

Point ``--endpoint`` at the national axis, or at the city gateway's ``GATEWAY_PUBLIC_URL/vxp``
with the systemid and secret from ``gateway agency vxp-credentials CODE``; nothing else changes,
which is the point.  Requests are what the SDK sends (gateway.vxp.protocol: signed XroadVnpt-*
headers, the raw file and CRLF, the SDK's hash-file hex); answers are printed as the axis sends them.

    python examples/vxp_sdk_client.py --endpoint URL --systemid ID --secret-file F sendEdoc FILE --from CODE [--to CODE]
    python examples/vxp_sdk_client.py … getReceivedEdocList [--messagetype edoc|status]
    python examples/vxp_sdk_client.py … getEdoc DOCID --out FILE
    python examples/vxp_sdk_client.py … updateStatus DOCID done|fail|processing [--description TEXT]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gateway.vxp.protocol import SERVICE_TYPE, sdk_file_hash, sdk_timestamp, sign_call

VIETNAM = timezone(timedelta(hours=7))


def call(args: argparse.Namespace, method: str, fields: dict[str, str], body: bytes, content_type: str) -> dict:
    secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
    stamp = sdk_timestamp(datetime.now(VIETNAM))
    headers = sign_call(args.systemid, secret, fields, content_type=content_type, timestamp=stamp)
    request = urllib.request.Request(
        f"{args.endpoint.rstrip('/')}/{method}", data=body, headers=dict(headers), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - the endpoint is the user's
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        sys.exit(f"{method}: HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}")
    except urllib.error.URLError as exc:
        sys.exit(f"{method}: {args.endpoint} does not answer ({exc.reason}); is it running?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--systemid", required=True)
    parser.add_argument("--secret-file", required=True)
    sub = parser.add_subparsers(dest="method", required=True)
    send = sub.add_parser("sendEdoc")
    send.add_argument("file")
    send.add_argument("--from", dest="sender", required=True)
    send.add_argument("--to")
    send.add_argument("--messagetype", default="edoc", choices=["edoc", "status"])
    listed = sub.add_parser("getReceivedEdocList")
    listed.add_argument("--messagetype", default="edoc", choices=["edoc", "status"])
    get = sub.add_parser("getEdoc")
    get.add_argument("doc_id")
    get.add_argument("--out", required=True)
    update = sub.add_parser("updateStatus")
    update.add_argument("doc_id")
    update.add_argument("status", choices=["done", "fail", "processing"])
    update.add_argument("--description", default="")
    args = parser.parse_args()

    if args.method == "sendEdoc":
        data = Path(args.file).read_bytes()
        fields = {"from": args.sender, "servicetype": SERVICE_TYPE, "messagetype": args.messagetype}
        fields["hash-file"] = sdk_file_hash(data)
        if args.to:
            fields["to"] = json.dumps(args.to)
        found = call(args, "sendEdoc", fields, data + b"\r\n", "application/octet-stream")
    elif args.method == "getReceivedEdocList":
        fields = {"servicetype": SERVICE_TYPE, "messagetype": args.messagetype}
        found = call(args, "getReceivedEdocList", fields, b"", "application/json")
    elif args.method == "getEdoc":
        found = call(args, "getEdoc", {"docId": args.doc_id}, b"{}", "application/json")
        if found.get("status") == "OK":
            Path(args.out).write_bytes(base64.b64decode(found.pop("data")))
            found["written"] = args.out
    else:
        fields = {"docId": args.doc_id, "status": args.status}
        if args.description:
            fields["description"] = args.description
        found = call(args, "updateStatus", fields, b"{}", "application/json")
    print(json.dumps(found, ensure_ascii=False, indent=2))
    sys.exit(0 if found.get("status") == "OK" else 1)


if __name__ == "__main__":
    main()
