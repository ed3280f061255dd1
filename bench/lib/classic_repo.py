#!/usr/bin/env python3
"""Generate classic (index.yaml) chart repositories for bench/migrate.sh and bench/index.sh.

  classic_repo.py charts DIR CHARTS VERSIONS BASE_URL
      CHARTS x VERSIONS real chart archives (Helm's layout: one top folder, Chart.yaml,
      values.yaml, templates/, README.md), 3 to 60 KiB each, and an index.yaml listing them
      with their sha256 digests and relative URLs; plus plan.tsv (name, version, file, digest
      per line) for the peer loop of bench/migrate.sh.

  classic_repo.py index DIR TARGET_MIB BASE_URL
      An index.yaml of about TARGET_MIB MiB with entries shaped like Bitnami's (annotations,
      dependencies, maintainers, sources, keywords, created with nanoseconds), many charts times
      many versions; only chart-000's newest version has a real archive beside it.

Everything is seeded, so the same arguments give the same bytes.
"""

import gzip
import hashlib
import io
import os
import random
import sys
import tarfile

WORDS = """app api backend batch cache cert cluster config controller cron daemon data database
debug deploy disk dns endpoint event exporter gateway grpc health http image ingress job kafka
key label limit log manager memory metric monitor mount network node operator path pod policy
port probe proxy queue redis release replica resource role route rule runtime secret selector
server service session sidecar storage stream sync target task timeout tls token traffic user
volume webhook worker zone""".split()


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def chart_files(rng, name, version, size):
    """The files of one chart, about `size` bytes of template text in all."""
    files = {
        "Chart.yaml": (
            f"apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{version}\"\n"
            f"description: {words(rng, 8)}\ntype: application\nhome: https://example.com/{name}\n"
            f"sources:\n  - https://github.com/example/charts/tree/main/{name}\n"
            f"maintainers:\n  - name: Example\n    email: charts@example.com\n"
        ),
        "values.yaml": "".join(
            f"{rng.choice(WORDS)}{i}:\n  enabled: {rng.choice(['true', 'false'])}\n"
            f"  {rng.choice(WORDS)}: {rng.randint(1, 9999)}\n"
            for i in range(40)
        ),
        "README.md": f"# {name}\n\n" + "\n".join(words(rng, 12) for _ in range(30)) + "\n",
        "templates/_helpers.tpl": (
            '{{- define "chart.fullname" -}}{{ .Release.Name }}-' + name + "{{- end }}\n"
        ),
    }
    i, total = 0, 0
    while total < size:
        i += 1
        text = "".join(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ include \"chart.fullname\" . }}}}-{i}-{j}\n"
            f"data:\n  {rng.choice(WORDS)}: {{{{ .Values.{rng.choice(WORDS)}.{rng.choice(WORDS)} | quote }}}}\n"
            f"  note: {words(rng, 10)}\n---\n"
            for j in range(rng.randint(5, 40))
        )
        files[f"templates/{rng.choice(WORDS)}-{i}.yaml"] = text
        total += len(text)
    return files


def tgz(name, files):
    """A Helm-style package: entries under NAME/, mode 0644, gzip without a timestamp."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files, key=lambda p: (p != "Chart.yaml", p)):
            data = files[path].encode()
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def entry(rng, name, version, digest, url, created):
    """One index entry, shaped like the entries of Bitnami's index.yaml."""
    image = f"docker.io/example/{name}:{version}-debian-12-r{rng.randint(0, 40)}"
    deps = "".join(
        f"    - name: {d}\n      repository: oci://registry.example.com/charts\n"
        f"      tags:\n      - example-{d}\n      version: {rng.randint(1, 20)}.x.x\n"
        for d in rng.sample(["common", "redis", "postgresql", "mariadb", "zookeeper"], 2)
    )
    keywords = "".join(f"    - {w}\n" for w in rng.sample(WORDS, 4))
    return (
        f"  - annotations:\n"
        f"      category: {rng.choice(['Database', 'Infrastructure', 'Analytics', 'CMS'])}\n"
        f"      images: |\n        - name: {name}\n          image: {image}\n"
        f"        - name: os-shell\n          image: docker.io/example/os-shell:12-debian-12-r{rng.randint(0, 40)}\n"
        f"      licenses: Apache-2.0\n"
        f"    apiVersion: v2\n"
        f"    appVersion: {version}\n"
        f"    created: \"{created}\"\n"
        f"    dependencies:\n{deps}"
        f"    description: {words(rng, 14)}\n"
        f"    digest: {digest}\n"
        f"    home: https://example.com/{name}\n"
        f"    icon: https://example.com/assets/stacks/{name}/img/{name}-stack-220x234.png\n"
        f"    keywords:\n{keywords}"
        f"    maintainers:\n    - name: Example Charts\n      url: https://github.com/example/charts\n"
        f"    name: {name}\n"
        f"    sources:\n    - https://github.com/example/charts/tree/main/example/{name}\n"
        f"    urls:\n    - {url}\n"
        f"    version: {version}\n"
    )


def created(rng, i):
    return (
        f"20{18 + i % 7:02}-{1 + i % 12:02}-{1 + i % 28:02}T"
        f"{rng.randint(0, 23):02}:{rng.randint(0, 59):02}:{rng.randint(0, 59):02}."
        f"{rng.randint(0, 999999999):09}Z"
    )


def versions(n):
    """n versions, newest last: 1.0.0, 1.0.1, ... with a minor bump every 7."""
    return [f"{1 + i // 49}.{(i // 7) % 7}.{i % 7}" for i in range(n)]


def write_index(path, entries_by_chart):
    with open(path, "w") as f:
        f.write("apiVersion: v1\nentries:\n")
        for name, entries in entries_by_chart:
            f.write(f"  {name}:\n")
            for e in entries:
                f.write(e)
        f.write('generated: "2024-06-01T00:00:00.000000000Z"\n')


def charts(out, n_charts, n_versions, base_url):
    rng = random.Random(4242)
    os.makedirs(out, exist_ok=True)
    by_chart, plan = [], []
    i = 0
    for c in range(n_charts):
        name = f"chart-{c:03}-{rng.choice(WORDS)}"
        entries = []
        for v in reversed(versions(n_versions)):
            i += 1
            size = int(min(400_000, max(10_000, rng.lognormvariate(11.0, 0.8))))
            data = tgz(name, chart_files(rng, name, v, size))
            file = f"{name}-{v}.tgz"
            with open(os.path.join(out, file), "wb") as f:
                f.write(data)
            digest = hashlib.sha256(data).hexdigest()
            entries.append(entry(rng, name, v, digest, file, created(rng, i)))
            plan.append(f"{name}\t{v}\t{file}\t{digest}\n")
        by_chart.append((name, entries))
    write_index(os.path.join(out, "index.yaml"), by_chart)
    with open(os.path.join(out, "plan.tsv"), "w") as f:
        f.writelines(plan)


def big_index(out, target_mib, base_url):
    rng = random.Random(5151)
    os.makedirs(out, exist_ok=True)
    target = target_mib * 1024 * 1024
    per_chart = 120
    # One real archive: the newest version of chart-000, which `repo fetch` downloads.
    first = "chart-000"
    newest = versions(per_chart)[-1]
    data = tgz(first, chart_files(rng, first, newest, 20_000))
    with open(os.path.join(out, f"{first}-{newest}.tgz"), "wb") as f:
        f.write(data)
    real_digest = hashlib.sha256(data).hexdigest()
    by_chart, size, i, c = [], 0, 0, 0
    while size < target:
        name = first if c == 0 else f"chart-{c:03}-{rng.choice(WORDS)}"
        entries = []
        for v in reversed(versions(per_chart)):
            i += 1
            if name == first and v == newest:
                digest, url = real_digest, f"{first}-{newest}.tgz"
            else:
                digest = hashlib.sha256(f"{name}-{v}".encode()).hexdigest()
                url = f"{base_url}/{name}-{v}.tgz"
            e = entry(rng, name, v, digest, url, created(rng, i))
            entries.append(e)
            size += len(e)
        by_chart.append((name, entries))
        c += 1
    write_index(os.path.join(out, "index.yaml"), by_chart)
    print(f"{c} charts x {per_chart} versions = {i} entries")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "charts" and len(sys.argv) == 6:
        charts(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif mode == "index" and len(sys.argv) == 5:
        big_index(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)
