"""Renders terraform/'s IAM policy documents as the JSON AWS would get, for
the IAM simulator (tests/support/iam_simulate.mjs) and for the check that
each policy allows exactly the actions its code calls.

Every terraform/*.tf file must parse (python-hcl2). It covers the terraform
this repository writes, and fails on anything else: literals, `${...}`
interpolation of locals, variables (their defaults, or the bindings given),
resource attributes (fixed, well-formed placeholder ARNs, so the simulator
can check each resource against its action), `concat(...)`, list literals
and `[for x in L : "..."]`. `$${` stays a policy variable (`${aws:...}`).

Input (stdin, JSON): {"bindings": {"local.subnet_ids": [...], ...}}
Output (stdout, JSON): {"engineer": {"Version": ..., "Statement": [...]}, ...}

Usage: python terraform_render.py TERRAFORM_DIR < bindings.json
"""
import json
import pathlib
import re
import sys

import hcl2

ACCOUNT = "111122223333"
# What terraform would know only after apply: fixed, recognisable values.
ATTRIBUTES = {
    "data.aws_caller_identity.current.account_id": ACCOUNT,
    "data.aws_partition.current.partition": "aws",
}
# A resource's attribute, as the ARN or id AWS would give it.
PLACEHOLDERS = {
    ("aws_s3_bucket", "arn"): "arn:aws:s3:::workstation-{name}",
    ("aws_kms_key", "arn"): "arn:aws:kms:us-east-1:{account}:key/{name}",
    ("aws_iam_role", "arn"): "arn:aws:iam::{account}:role/workstation-{name}",
    ("aws_security_group", "arn"): "arn:aws:ec2:us-east-1:{account}:security-group/sg-{name}",
    ("aws_route53_zone", "zone_id"): "Z{name}",
    ("aws_cloudwatch_log_group", "arn"): "arn:aws:logs:us-east-1:{account}:log-group:{name}",
    ("aws_sqs_queue", "arn"): "arn:aws:sqs:us-east-1:{account}:{name}",
    ("aws_lambda_function", "arn"): "arn:aws:lambda:us-east-1:{account}:function:{name}",
}


class Unsupported(Exception):
    pass


def unquote(s):
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s


def split_top(text, sep=","):
    """Splits at `sep` outside brackets, braces, parentheses and strings."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


class Terraform:
    def __init__(self, directory, bindings):
        self.locals, self.vars = {}, {}
        self.policies = {}
        self.bindings = bindings
        for path in sorted(pathlib.Path(directory).glob("*.tf")):
            with open(path) as f:
                doc = hcl2.load(f)
            for block in doc.get("locals", []):
                self.locals.update({k: v for k, v in block.items() if not k.startswith("__")})
            for block in doc.get("variable", []):
                for name, body in block.items():
                    self.vars[unquote(name)] = body.get("default")
            for block in doc.get("data", []):
                for kind, named in block.items():
                    if unquote(kind) == "aws_iam_policy_document":
                        for name, body in named.items():
                            # `count` makes a document optional, not different.
                            self.policies[unquote(name)] = body.get("statement", [])

    def value(self, raw, scope=None):
        """A value as hcl2 gives it: a quoted template, `${expr}`, a list."""
        scope = scope or {}
        if isinstance(raw, list):
            out = []
            for item in raw:
                v = self.value(item, scope)
                out.extend(v if isinstance(v, list) else [v])
            return out
        if not isinstance(raw, str):
            return raw
        m = re.fullmatch(r"\$\{(.*)\}", raw, re.S)
        if m and self.balanced(m.group(1)):
            return self.expr(m.group(1), scope)
        return self.template(unquote(raw), scope)

    @staticmethod
    def balanced(text):
        depth = 0
        for c in text:
            depth += {"{": 1, "}": -1}.get(c, 0)
            if depth < 0:
                return False
        return depth == 0

    def template(self, text, scope):
        """Interpolates `${...}`; `$${` is a literal `${` (a policy variable)."""
        out, i = "", 0
        while i < len(text):
            if text.startswith("$${", i):
                out += "${"
                i += 3
            elif text.startswith("${", i):
                depth, j = 1, i + 2
                while depth:
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    j += 1
                v = self.expr(text[i + 2 : j - 1], scope)
                if isinstance(v, list):
                    raise Unsupported(f"a list interpolated into a string: {text}")
                out += str(v)
                i = j
            else:
                out += text[i]
                i += 1
        return out

    def expr(self, e, scope):
        e = e.strip()
        if e.startswith("[for "):
            m = re.fullmatch(r"\[for (\w+) in ([\w.]+) : (\".*\")\]", e, re.S)
            if not m:
                raise Unsupported(e)
            var, source, body = m.groups()
            return [self.template(body[1:-1], {**scope, var: x}) for x in self.expr(source, scope)]
        if e.startswith("concat(") and e.endswith(")"):
            out = []
            for part in split_top(e[len("concat(") : -1]):
                out.extend(self.expr(part, scope))
            return out
        if e.startswith("[") and e.endswith("]"):
            return [self.expr(p, scope) for p in split_top(e[1:-1])]
        if e.startswith('"') and e.endswith('"'):
            return self.template(e[1:-1], scope)
        if e in scope:
            return scope[e]
        if e in self.bindings:
            return self.bindings[e]
        if e in ATTRIBUTES:
            return ATTRIBUTES[e]
        if e.startswith("local.") and e[6:] in self.locals:
            return self.value(self.locals[e[6:]], scope)
        if e.startswith("var.") and e[4:] in self.vars:
            v = self.vars[e[4:]]
            if v is None:
                raise Unsupported(f"{e} has no default: bind it")
            return self.value(v, scope) if isinstance(v, (list, str)) else v
        m = re.fullmatch(r"(aws_\w+)\.(\w+)(?:\[0\])?\.(arn|id|name|zone_id)", e)
        if m and (m.group(1), m.group(3)) in PLACEHOLDERS:
            # terraform names resources with `_`, their AWS names have `-`.
            return PLACEHOLDERS[(m.group(1), m.group(3))].format(name=m.group(2).replace("_", "-"), account=ACCOUNT)
        raise Unsupported(f"cannot evaluate {e!r}")

    def policy(self, name):
        """The document `name` as AWS JSON: Sid, Effect, Action, Resource,
        Principal and Condition ({operator: {key: [values]}})."""
        known = {"sid", "effect", "actions", "resources", "condition", "principals", "__is_block__", "__comments__"}
        statements = []
        for st in self.policies[name]:
            unknown = set(st) - known
            if unknown:
                # not_actions, not_resources...: rendered wrong would be
                # simulated wrong.
                raise Unsupported(f"statement keys {sorted(unknown)} in policy {name}")
            out = {"Effect": unquote(st.get("effect", '"Allow"')), "Action": self.value(st.get("actions", []))}
            if "sid" in st:
                out["Sid"] = unquote(st["sid"])
            if "resources" in st:
                out["Resource"] = self.value(st["resources"])
            for p in st.get("principals", []):
                out.setdefault("Principal", {})[unquote(p["type"])] = self.value(p["identifiers"])
            for c in st.get("condition", []):
                test, key = unquote(c["test"]), self.value(c["variable"])
                keys = out.setdefault("Condition", {}).setdefault(test, {})
                if key in keys:
                    raise Unsupported(f"{name}: two {test} conditions on {key}")
                # IAM compares condition values as strings (numbers too).
                keys[key] = [str(v) for v in self.value(c["values"])]
            statements.append(out)
        return {"Version": "2012-10-17", "Statement": statements}


def main(directory):
    bindings = json.load(sys.stdin).get("bindings", {})
    tf = Terraform(directory, bindings)
    json.dump({name: tf.policy(name) for name in sorted(tf.policies)}, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
