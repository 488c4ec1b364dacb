"""Validates Kubernetes manifests: built-in kinds against the Kubernetes JSON schemas
(kubernetes-validate, strict: an unknown field is an error) for each version given,
KEDA's kinds against the schemas in deploy/k8s/schemas/, anything else is an error.
Then Hookline's own consistency: KEDA watches the work queue of the configured prefix,
and every Secret key a pod reads is one the example Secret has.

Usage: k8s_validate.py --versions 1.30.0,1.37.0 [--rendered] FILE...
(scripts/k8s_check.sh runs it on every manifest file and on each rendered kustomization.)
"""

import argparse
import json
import pathlib
import sys
import tomllib

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "deploy" / "k8s" / "schemas"


def crd_schema(doc):
    group = doc.get("apiVersion", "").split("/")[0]
    path = SCHEMAS / f"{doc.get('kind', '').lower()}.{group}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def check_doc(doc, versions, where):
    """Problems with one document, as strings."""
    kind, version = doc.get("kind"), doc.get("apiVersion", "")
    name = f"{kind}/{doc.get('metadata', {}).get('name')}"
    problems = []
    for v in versions:
        try:
            kubernetes_validate.validate(doc, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, e.path))
            problems.append(f"{where}: {name} (Kubernetes {v}): {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            # Not a built-in kind (KEDA's): our schema, or an error.
            schema = crd_schema(doc)
            if schema is None:
                return [f"{where}: {name}: no schema for {version} {kind} in Kubernetes {v} "
                        f"nor in {SCHEMAS.relative_to(ROOT)}"]
            errors = jsonschema.Draft202012Validator(schema).iter_errors(doc)
            return [f"{where}: {name}: {'/'.join(map(str, e.path))}: {e.message}"
                    for e in errors]
    return problems


def written_secrets(settings):
    """(binaries that resolve it, how it is written) for every secret key in the config."""
    everyone = {"ingest", "worker", "migrate"}
    found = [(everyone, settings.get("database", {}).get("url")),
             (everyone, settings.get("amqp", {}).get("url")),
             ({"ingest"}, settings.get("admin", {}).get("token"))]
    for source in settings.get("sources", {}).values():
        found += [({"ingest"}, s) for s in source.get("secrets", [])]
    return [(who, w) for who, w in found if isinstance(w, str)]


def unresolvable(doc, pod, config_secrets):
    """env:/file: secrets of the config that this pod's binary resolves but cannot read."""
    component = doc.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
    mounted, env = set(), set()
    for c in pod.get("containers", []):
        env |= {e["name"] for e in c.get("env", [])}
        for m in c.get("volumeMounts", []):
            vol = next((v for v in pod.get("volumes", []) if v["name"] == m["name"]), {})
            for item in vol.get("secret", {}).get("items", []):
                mounted.add(f"{m['mountPath'].rstrip('/')}/{item['path']}")
    problems = []
    for who, written in config_secrets:
        if component not in who:
            continue
        if written.startswith("env:") and written[4:] not in env:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {written} is not set")
        if written.startswith("file:") and written[5:] not in mounted:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {written} is not mounted")
    return problems


def consistency(docs):
    """Hookline's own rules across one rendered kustomization."""
    problems = []
    config = next((d for d in docs if d.get("kind") == "ConfigMap"
                   and "hookline.toml" in d.get("data", {})), None)
    if config is None:
        return ["rendered: no ConfigMap with hookline.toml"]
    settings = tomllib.loads(config["data"]["hookline.toml"])
    prefix = settings.get("amqp", {}).get("prefix", "hookline")
    config_secrets = written_secrets(settings)
    for doc in docs:
        if doc.get("kind") != "ScaledObject":
            continue
        for trigger in doc["spec"]["triggers"]:
            queue = trigger.get("metadata", {}).get("queueName")
            if trigger.get("type") == "rabbitmq" and queue != f"{prefix}.work":
                problems.append(f"ScaledObject watches {queue!r}, the work queue is {prefix}.work")
    secrets = {d["metadata"]["name"]: set(d.get("data", {})) | set(d.get("stringData", {}))
               for d in docs if d.get("kind") == "Secret"}
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec")
        if not pod:
            continue
        wanted = []
        for c in pod.get("containers", []):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    wanted.append((ref["name"], ref["key"]))
        for vol in pod.get("volumes", []):
            secret = vol.get("secret")
            for item in (secret or {}).get("items", []):
                wanted.append((secret["secretName"], item["key"]))
        for name, key in wanted:
            if name in secrets and key not in secrets[name]:
                problems.append(f"{doc['kind']}/{doc['metadata']['name']} reads {name}/{key}, "
                                f"which the Secret does not have")
        problems += unresolvable(doc, pod, config_secrets)
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", required=True)
    parser.add_argument("--rendered", action="store_true",
                        help="the files are rendered kustomizations: check consistency too")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    versions = args.versions.split(",")
    problems, count = [], 0
    for file in args.files:
        docs = [d for d in yaml.safe_load_all(pathlib.Path(file).read_text()) if d]
        for doc in docs:
            count += 1
            problems += check_doc(doc, versions, file)
        if args.rendered:
            problems += [f"{file}: {p}" for p in consistency(docs)]
    for p in problems:
        print(f"FAIL {p}")
    print(f"{count} manifests checked against Kubernetes {', '.join(versions)} "
          f"and {SCHEMAS.relative_to(ROOT)}: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
