#!/bin/bash
# make demo: a sandbox under examples/policies/demo.yaml.
# The full demo (a microVM behind the proxy, brokered traffic) needs the
# proxy and the launcher; until they exist this shows what the policy
# engine decides for the demo's traffic.
set -eu
build=${1:-build/plain}
fb="$build/bin/firebreak"
policy=examples/policies/demo.yaml
export DEMO_API_KEY=${DEMO_API_KEY:-sk-demo-never-shown}
echo "== policy check"
"$fb" policy check "$policy"
echo "== decisions"
for host in example.org registry.npmjs.org evil.example api.demo.test -; do
	printf '%-22s ' "$host"
	"$fb" policy explain "$policy" "$host"
done
echo "== read-back (secrets redacted)"
"$fb" policy dump "$policy"
echo
echo "not yet: the live sandbox part of the demo needs the proxy and the launcher"
