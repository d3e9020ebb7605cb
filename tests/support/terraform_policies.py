"""Parses every terraform/*.tf file with python-hcl2 (a file that does not
parse fails) and prints, as JSON, the actions each aws_iam_policy_document
allows: {"engineer": ["ec2:CreateTags", ...], ...}.

Usage: python terraform_policies.py TERRAFORM_DIR
"""
import json
import pathlib
import sys

import hcl2


def unquote(s):
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s


def main(directory):
    policies = {}
    for path in sorted(pathlib.Path(directory).glob("*.tf")):
        with open(path) as f:
            try:
                doc = hcl2.load(f)
            except Exception as e:  # the parser's own error types vary by version
                sys.exit(f"{path}: does not parse as HCL: {e}")
        for block in doc.get("data", []):
            for kind, named in block.items():
                if unquote(kind) != "aws_iam_policy_document":
                    continue
                for name, body in named.items():
                    actions = set()
                    for st in body.get("statement", []):
                        if unquote(st.get("effect", '"Allow"')) == "Allow":
                            actions.update(unquote(a) for a in st.get("actions", []))
                    policies[unquote(name)] = sorted(actions)
    json.dump(policies, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
