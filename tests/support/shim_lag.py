"""EC2's eventual consistency, for the test shim (throttle_shim.py).

AWS, "Eventual consistency in the Amazon EC2 API" (EC2 API Reference): "a
resource you just created might not be immediately visible to subsequent
describe calls"; "if you add tags to a resource, they might not be
immediately visible"; and, for RunInstances right after CreateKeyPair or
ImportKeyPair, "you might get an error that the key pair does not exist".
For S seconds after its creation, what a successful RunInstances,
CreateVolume, CreateKeyPair/ImportKeyPair or CreateTags made is:
- unknown by id: InvalidInstanceID.NotFound, InvalidVolume.NotFound,
  InvalidKeyPair.NotFound (also to a RunInstances naming the key pair);
- left out of listings (a volume attached to a hidden instance too);
- for tags: missing from the resource's tagSet, and the resource left out
  of a listing that filters on the tag's key.
"""

import re
import threading
import time
import xml.etree.ElementTree as ET

NOT_FOUND = {"instance": "InvalidInstanceID.NotFound", "volume": "InvalidVolume.NotFound", "key": "InvalidKeyPair.NotFound"}


def indexed(params, prefix):
    """Values of PREFIX.1, PREFIX.2, ... in a query's parameters."""
    return {v for k, v in params.items() if re.fullmatch(re.escape(prefix) + r"\.\d+", k)}


class Lag:
    def __init__(self):
        self.seconds = 0.0
        self.until = {}  # (kind, id) or ("tag", resource, key) -> monotonic time it shows
        self.lock = threading.Lock()

    def hidden(self):
        t = time.monotonic()
        with self.lock:
            return {k for k, until in self.until.items() if t < until}

    def note(self, action, params, data):
        """Records what a successful call `action` made (moto's answer `data`)."""
        if not self.seconds:
            return
        made = []
        text = data.decode("utf-8", "replace")
        if action == "RunInstances":
            made += [("instance", i) for i in re.findall(r"<instanceId>(i-[0-9a-f]+)</instanceId>", text)]
        elif action == "CreateVolume":
            made += [("volume", v) for v in re.findall(r"<volumeId>(vol-[0-9a-f]+)</volumeId>", text)]
        elif action in ("CreateKeyPair", "ImportKeyPair"):
            made += [("key", params.get("KeyName", ""))]
        elif action == "CreateTags":
            keys = {v for k, v in params.items() if re.fullmatch(r"Tag\.\d+\.Key", k)}
            made += [("tag", r, k) for r in indexed(params, "ResourceId") for k in keys]
        with self.lock:
            for m in made:
                self.until[m] = time.monotonic() + self.seconds

    def refusal(self, action, params):
        """EC2's NotFound error for a call naming something not yet visible."""
        hidden = self.hidden()
        asked = {
            "DescribeInstances": ("instance", indexed(params, "InstanceId")),
            "DescribeVolumes": ("volume", indexed(params, "VolumeId")),
            "DescribeKeyPairs": ("key", indexed(params, "KeyName")),
            "RunInstances": ("key", {params["KeyName"]} if "KeyName" in params else set()),
        }.get(action)
        if not asked:
            return None
        kind, ids = asked
        missing = sorted(i for i in ids if (kind, i) in hidden)
        return (NOT_FOUND[kind], f"The {kind} '{', '.join(missing)}' does not exist") if missing else None

    def filtered(self, action, params, data):
        """moto's listing without what is not visible yet."""
        hidden = self.hidden()
        if not hidden or action not in ("DescribeInstances", "DescribeVolumes", "DescribeKeyPairs"):
            return data
        tag_filters = {v[len("tag:"):] for k, v in params.items() if re.fullmatch(r"Filter\.\d+\.Name", k) and v.startswith("tag:")}
        root = ET.fromstring(data)
        # The answer's own namespace (moto's has no trailing slash, EC2's
        # documents one): every lookup below is in it.
        ns = root.tag[1:root.tag.index("}")] if root.tag.startswith("{") else ""
        ET.register_namespace("", ns)

        def q(tag):
            return f"{{{ns}}}{tag}" if ns else tag

        instances = {i for kind, *rest in hidden if kind == "instance" for i in rest}

        def gone(item, kind, id_tag):
            rid = item.findtext(q(id_tag))
            if (kind, rid) in hidden:
                return True
            if kind == "volume" and any(a.findtext(q("instanceId")) in instances for a in item.iter(q("item")) if a.find(q("instanceId")) is not None):
                return True
            if any(("tag", rid, key) in hidden for key in tag_filters):
                return True
            for tags in item.findall(q("tagSet")):
                for t in list(tags):
                    if ("tag", rid, t.findtext(q("key"))) in hidden:
                        tags.remove(t)
            return False

        if action == "DescribeInstances":
            for reservations in root.iter(q("reservationSet")):
                for r in list(reservations):
                    for insts in r.findall(q("instancesSet")):
                        for i in list(insts):
                            if gone(i, "instance", "instanceId"):
                                insts.remove(i)
                        if len(insts) == 0:
                            reservations.remove(r)
        else:
            kind, set_tag, id_tag = ("volume", "volumeSet", "volumeId") if action == "DescribeVolumes" else ("key", "keySet", "keyName")
            for items in root.iter(q(set_tag)):
                for i in list(items):
                    if gone(i, kind, id_tag):
                        items.remove(i)
        return ET.tostring(root, encoding="UTF-8", xml_declaration=True)
