#!/usr/bin/env python3
"""Signs and annotates chart tags on a plain-HTTP registry, for bench/sync-signed.sh.

For each tag of REPO: a cosign keyed signature (the simple-signing payload signed with the
ECDSA P-256 key KEY by `openssl dgst`, under the tag sha256-<hex>.sig, as cosign writes it)
and an SBOM (an OCI 1.1 artifact whose subject is the chart, listed in the referrers tag
schema index sha256-<hex>, as oras writes it for registries without the referrers API).

Usage: sign_tags.py HOST REPO KEY TAG...
"""

import base64
import hashlib
import json
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
SBOM = "application/spdx+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as resp:
        return resp.status, resp.headers, resp.read()


def upload(host, repo, data):
    d = digest(data)
    _, headers, _ = request("POST", f"http://{host}/v2/{repo}/blobs/uploads/")
    location = headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    sep = "&" if "?" in location else "?"
    request("PUT", f"{location}{sep}digest={d}", data, {"Content-Type": "application/octet-stream"})
    return d


def put_manifest(host, repo, ref, body, media_type):
    request("PUT", f"http://{host}/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type})
    return digest(body)


def manifest_digest(host, repo, tag):
    _, headers, body = request(
        "GET", f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
    )
    return headers["Docker-Content-Digest"], len(body)


def sign(key, payload):
    der = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", key], input=payload, capture_output=True, check=True
    ).stdout
    return base64.b64encode(der).decode()


def one(host, repo, key, tag, empty):
    chart, size = manifest_digest(host, repo, tag)
    hexd = chart.split(":", 1)[1]
    # cosign: sha256-<hex>.sig
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{host}/{repo}"},
                "image": {"docker-manifest-digest": chart},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    layer = upload(host, repo, payload)
    sig = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": empty, "size": 2},
            "layers": [
                {
                    "mediaType": PAYLOAD,
                    "digest": layer,
                    "size": len(payload),
                    "annotations": {"dev.cosignproject.cosign/signature": sign(key, payload)},
                }
            ],
        }
    ).encode()
    put_manifest(host, repo, f"sha256-{hexd}.sig", sig, OCI_MANIFEST)
    # An SBOM referring to the chart, and the tag schema index listing it.
    sbom = json.dumps({"spdxVersion": "SPDX-2.3", "name": tag}).encode()
    sbom_layer = upload(host, repo, sbom)
    art = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SBOM,
            "config": {"mediaType": EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": SBOM, "digest": sbom_layer, "size": len(sbom)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": chart, "size": size},
        }
    ).encode()
    art_digest = put_manifest(host, repo, digest(art), art, OCI_MANIFEST)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": art_digest, "size": len(art), "artifactType": SBOM}
            ],
        }
    ).encode()
    put_manifest(host, repo, f"sha256-{hexd}", index, OCI_INDEX)


def main():
    host, repo, key, tags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    empty = upload(host, repo, b"{}")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda t: one(host, repo, key, t, empty), tags))


if __name__ == "__main__":
    main()
