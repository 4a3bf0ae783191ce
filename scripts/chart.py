"""The Helm chart, linted and rendered with helm-python-sdk (no helm binary, no network).

    chart.py lint   CHART [VALUES...]           findings as JSON; exit 1 on an error finding
    chart.py render CHART NAMESPACE [VALUES...]  the rendered objects as one YAML stream
    chart.py validate CHART [VALUES...]          values.schema.json's verdict on the values
    chart.py package CHART DEST VERSION          the chart archive at VERSION (image tag too)
    chart.py push ARCHIVE oci://REGISTRY/PATH    pushed as an OCI artifact; prints its digest
                                                 (credentials: $REGISTRY_USER, $REGISTRY_PASSWORD)

VALUES are YAML files, merged left to right over the chart's values.yaml, as `helm -f`. Run
with the tools' Python (scripts/install-deps.sh prints where); tests/chart.rs calls it.
"""

import json
import os
import sys

import helm_python as helm


def merged(paths):
    values = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            values = deep_merge(values, helm.values_from_yaml(f.read()))
    return values


def deep_merge(base, over):
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, chart_dir = argv[1], argv[2]
    if command == "lint":
        result = helm.lint(chart_dir, values=merged(argv[3:]))
        print(json.dumps(result, indent=2, default=str))
        # Helm's severities: 1 info, 2 warning, 4 error. A warning fails too.
        failing = [m for m in result.get("messages", []) if m.get("severity", 0) >= 2]
        return 1 if failing or result.get("errors") else 0
    if command == "validate":
        with helm.Chart.load(chart_dir) as chart:
            try:
                chart.validate_schema(merged(argv[3:]))
            except helm.HelmError as e:
                print(f"refused: {e}")
                return 1
        print("valid")
        return 0
    if command == "render":
        namespace, values = argv[3], merged(argv[4:])
        with helm.Chart.load(chart_dir) as chart:
            try:
                manifests = chart.render(values, name="consumption-metrics", namespace=namespace)
            except helm.HelmError as e:
                print(f"refused: {e}", file=sys.stderr)
                return 1
        for name in sorted(manifests):
            text = manifests[name].strip()
            if text:
                print(f"---\n# Source: {name}\n{text}")
        return 0
    if command == "package":
        destination, version = argv[3], argv[4]
        print(helm.package(chart_dir, destination=destination, version=version, app_version=version))
        return 0
    if command == "push":
        archive, remote = argv[2], argv[3]
        host = remote.removeprefix("oci://").split("/", 1)[0]
        with helm.RegistryClient() as client:
            client.login(host, os.environ["REGISTRY_USER"], os.environ["REGISTRY_PASSWORD"])
            pushed = client.push(archive, remote)
        print(pushed.get("digest", ""))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
