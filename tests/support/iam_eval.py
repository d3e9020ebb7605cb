"""Evaluates requests against terraform/'s IAM policy documents, because
moto cannot: its access control (moto/iam/access_control.py, 5.x) ignores
a statement's Resource and every Condition but sts:ExternalId, and the
engineer, box and reaper policies are all resource and condition rules.

It covers the IAM this repository writes, and fails on anything else:
- terraform: literals, `${...}` interpolation of locals, variables (their
  defaults, or the bindings given), resource and data attributes (fixed
  placeholder ARNs), `concat(...)`, list literals and `[for x in L : "..."]`;
- IAM: Allow/Deny, `*`/`?` in actions and resources, policy variables
  (`${aws:PrincipalTag/K}`, `${ec2:SourceInstanceARN}`), and the condition
  operators StringEquals, StringLike, Null, ForAllValues:StringNotEquals,
  ForAnyValue:StringNotEquals, ForAllValues:StringEquals,
  ForAllValues:StringLike. An explicit Deny wins; nothing allowed is
  denied.

Input (stdin, JSON): {"bindings": {"local.subnet_ids": [...], ...},
  "requests": [{"policy": "engineer", "principal_tags": {...},
                "action": "ec2:StopInstances", "resource": "arn:...",
                "context": {"ec2:ResourceTag/workstation:owner": "alice",
                            "aws:TagKeys": ["..."]}}]}
Output (stdout, JSON): ["allow" | "deny", ...], one per request.

Usage: python iam_eval.py TERRAFORM_DIR < requests.json
"""
import fnmatch
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
        if m:
            return f"arn:aws:test:::{m.group(1)}/{m.group(2)}"
        raise Unsupported(f"cannot evaluate {e!r}")

    def statements(self, policy):
        known = {"sid", "effect", "actions", "resources", "condition", "principals", "__is_block__", "__comments__"}
        for st in self.policies[policy]:
            unknown = set(st) - known
            if unknown:
                # not_actions, not_resources...: a rule this evaluator would
                # silently get wrong.
                raise Unsupported(f"statement keys {sorted(unknown)} in policy {policy}")
            yield {
                "effect": unquote(st.get("effect", '"Allow"')),
                "actions": self.value(st.get("actions", [])),
                "resources": self.value(st.get("resources", [])),
                "conditions": [
                    (unquote(c["test"]), self.value(c["variable"]), self.value(c["values"]))
                    for c in st.get("condition", [])
                ],
            }


def substitute(text, request):
    """Policy variables, from the request."""
    def one(m):
        key = m.group(1)
        if key.startswith("aws:PrincipalTag/"):
            return request.get("principal_tags", {}).get(key.split("/", 1)[1], "\0missing")
        return str(request.get("context", {}).get(key, "\0missing"))
    return re.sub(r"\$\{([^}]+)\}", one, text)


def condition_holds(test, variable, values, request):
    present = variable in request.get("context", {})
    actual = request.get("context", {}).get(variable)
    actual = actual if isinstance(actual, list) else ([] if actual is None else [actual])
    values = [substitute(v, request) for v in values]
    if test == "StringEquals":
        return any(a in values for a in actual)
    if test == "StringLike":
        return any(fnmatch.fnmatchcase(a, v) for a in actual for v in values)
    if test == "Null":
        return (not present) == (values == ["true"])
    if test == "ForAllValues:StringNotEquals":
        return all(a not in values for a in actual)
    if test == "ForAnyValue:StringNotEquals":
        return any(a not in values for a in actual)
    if test == "ForAllValues:StringEquals":
        return all(a in values for a in actual)
    if test == "ForAllValues:StringLike":
        return all(any(fnmatch.fnmatchcase(a, v) for v in values) for a in actual)
    raise Unsupported(f"condition operator {test}")


def decide(tf, request):
    allowed = False
    for st in tf.statements(request["policy"]):
        if not any(fnmatch.fnmatchcase(request["action"], a) for a in st["actions"]):
            continue
        if not any(fnmatch.fnmatchcase(request["resource"], substitute(r, request)) for r in st["resources"]):
            continue
        if not all(condition_holds(t, var, vals, request) for t, var, vals in st["conditions"]):
            continue
        if st["effect"] == "Deny":
            return "deny"
        allowed = True
    return "allow" if allowed else "deny"


def main(directory):
    data = json.load(sys.stdin)
    tf = Terraform(directory, data.get("bindings", {}))
    json.dump([decide(tf, r) for r in data["requests"]], sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
