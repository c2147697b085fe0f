"""Runs SAM's own transform (the one `sam deploy` has CloudFormation apply) on template.yaml,
offline: `sam validate --lint` does not, and some refusals only come from it (e.g. a
WebSocketApi route key that is not alphanumeric). Local CodeUri folders are replaced by a
placeholder S3 location, as `sam package` would. Exits non-zero with SAM's errors."""

import re
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


def main() -> int:
    text = open("template.yaml", encoding="utf-8").read()
    text = re.sub(r"CodeUri: functions/\S+", "CodeUri: s3://placeholder/code.zip", text)
    try:
        out = transform(yaml_parse(text), {}, NoManagedPolicies())
    except Exception as e:  # SAM reports every problem in one exception
        print(f"SAM transform failed: {e}", file=sys.stderr)
        return 1
    print(f"SAM transform: {len(out['Resources'])} resources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
