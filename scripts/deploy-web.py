#!/usr/bin/env python3
"""Upload the web client to a deployed stack: `make deploy-web STACK=<stack-name>`.

Reads the stack's outputs, writes config.json (the HTTP API URL and the Socket.IO URL and
path of this stack: the API URLs are injected here, at deploy time), uploads web/public to
the stack's bucket with the right content types, and invalidates the CloudFront cache.
Needs AWS credentials in the environment and boto3 (the deploy tools' venv has it).
"""
import json
import mimetypes
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import boto3

FILES = ["index.html", "app.css", "app.js", "vendor/socket.io.esm.min.js"]


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: deploy-web.py <stack-name>", file=sys.stderr)
        return 2
    stack = sys.argv[1]
    root = Path(__file__).resolve().parent.parent / "web" / "public"
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        print(f"missing {missing}: run `make web` first", file=sys.stderr)
        return 1
    cfn = boto3.client("cloudformation")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    }
    ws = urlparse(outputs["WebSocketUrl"])  # wss://<api>.execute-api.<region>.<suffix>/<stage>
    config = {
        "api": outputs["HttpApiUrl"],
        "ws": f"{ws.scheme}://{ws.netloc}",
        "path": ws.path,  # the stage is the Socket.IO path (no trailing slash)
    }
    s3 = boto3.client("s3")
    bucket = outputs["WebBucketName"]
    for name in FILES:
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".js"):
            ctype = "text/javascript; charset=utf-8"
        s3.upload_file(
            str(root / name),
            bucket,
            name,
            ExtraArgs={"ContentType": ctype, "CacheControl": "no-cache"},
        )
    s3.put_object(
        Bucket=bucket,
        Key="config.json",
        Body=json.dumps(config).encode(),
        ContentType="application/json",
        CacheControl="no-cache",
    )
    boto3.client("cloudfront").create_invalidation(
        DistributionId=outputs["WebDistributionId"],
        InvalidationBatch={
            "Paths": {"Quantity": 1, "Items": ["/*"]},
            "CallerReference": f"deploy-web-{int(time.time())}",
        },
    )
    print(f"web client: {outputs['WebUrl']} (config: {json.dumps(config)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
