"""The AWS Price List Query API's GetProducts, which moto lacks, for the
test shim (throttle_shim.py).

POST /__prices {"products": [{"attributes": {...}, "usd": "0.0416", "unit":
"Hrs"}, ...]} sets the catalogue. GetProducts (JSON 1.1, X-Amz-Target
AWSPriceListService.GetProducts) answers the products of ServiceCode
AmazonEC2 whose attributes equal every TERM_MATCH filter's value, paged by
MaxResults and NextToken. Each PriceList entry is a JSON document in the
shape AWS documents ("Price List Query API", API_pricing_GetProducts and
the offer file's product/terms): product.attributes,
terms.OnDemand.<sku>.<offerTermCode>.priceDimensions.<rateCode>
.pricePerUnit.USD, and
a Reserved term beside it that a reader must not take.
"""

import json


class Catalogue:
    def __init__(self):
        self.products = []

    def set(self, products):
        self.products = list(products)

    def answer(self, request):
        """GetProducts' answer (a dict) to the request's JSON."""
        filters = request.get("Filters", [])

        def matches(attributes):
            return all(f.get("Type") == "TERM_MATCH" and attributes.get(f.get("Field")) == f.get("Value") for f in filters)

        hits = [item(p, i) for i, p in enumerate(self.products) if request.get("ServiceCode") == "AmazonEC2" and matches(p["attributes"])]
        start = int(request.get("NextToken") or 0)
        size = int(request.get("MaxResults") or 100)
        out = {"FormatVersion": "aws_v1", "PriceList": hits[start : start + size]}
        if start + size < len(hits):
            out["NextToken"] = str(start + size)
        return out


def item(product, i):
    sku = "SKU%04d" % i

    def term(code, usd):
        return {
            "offerTermCode": code,
            "sku": sku,
            "effectiveDate": "2026-12-01T00:00:00Z",
            "priceDimensions": {
                f"{sku}.{code}.6YS6EN2CT7": {
                    "rateCode": f"{sku}.{code}.6YS6EN2CT7",
                    "unit": product.get("unit", "Hrs"),
                    "pricePerUnit": {"USD": usd},
                    "description": "test price",
                    "beginRange": "0",
                    "endRange": "Inf",
                    "appliesTo": [],
                }
            },
            "termAttributes": {},
        }

    doc = {
        "product": {"productFamily": product["attributes"].get("productFamily", "Compute Instance"), "attributes": product["attributes"], "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {sku + ".JRTCKXETXF": term("JRTCKXETXF", product["usd"])},
            "Reserved": {sku + ".4NA7Y494T4": term("4NA7Y494T4", "0.0001")},
        },
        "version": "20261201000000",
        "publicationDate": "2026-12-01T00:00:00Z",
    }
    return json.dumps(doc)
