#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Chart checks run by `make chart`: render charts/tableguard with default values and
# with each option on, validate every object against strict Kubernetes schemas, check
# that the chart's ports, paths, flags and policy agree with the server, and lint the
# Dockerfile. Renders with Helm when present, else with chart-render, else skips.
#
# usage: tests/chart/check.sh [BUILD_DIR]   (default build; BUILD_DIR/tableguard is the server)
# Tools: tests/chart/install-tools.sh installs Helm into build/tools and chart-render.
set -u

build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
here=$root/tests/chart
chart=$root/charts/tableguard
ns=tableguard-system
release=tg
kube=1.30.0

passed=0
failed=0
skipped=0
failures=""
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); failures="$failures
  $1"; echo "FAIL  $1"; }
skip() { skipped=$((skipped + 1)); echo "skip  $1"; }
# run NAME CMD...: runs CMD, prints its output only when it fails.
run() {
	name=$1
	shift
	if out=$("$@" 2>&1); then
		ok "$name"
	else
		bad "$name"
		printf '%s\n' "$out" | sed 's/^/      /'
	fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# smoke_server: runs the server with the default render's arguments (paths moved under
# $work, listeners on loopback), probes it as the kubelet and the API server would, then
# stops it with SIGTERM and expects a clean exit within the drain time.
smoke_server() {
	port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
	mport=$((port + 1))
	mkdir -p "$work/policy" "$work/exceptions" "$work/audit"
	cp "$work/default.policy" "$work/policy/policy.yaml"
	cp "$work/default.exceptions" "$work/exceptions/exceptions.yaml"
	svc_host=$release-tableguard.$ns.svc
	sed -e "s#^/etc/tableguard/policy#$work/policy#" -e "s#^/etc/tableguard/exceptions#$work/exceptions#" \
		-e "s#^/etc/tableguard/tls#$work/default.tls#" \
		-e "s#^0\.0\.0\.0:8443\$#127.0.0.1:$port#" -e "s#^0\.0\.0\.0:9090\$#127.0.0.1:$mport#" \
		-e "s#^/var/lib/tableguard/audit/\$(POD_NAME)\.log\$#$work/audit/pod.log#" "$work/default.args" >"$work/smoke.args"
	# Arguments are one a line and contain no whitespace.
	# shellcheck disable=SC2046
	"$bin" $(cat "$work/smoke.args") >"$work/smoke.out" 2>"$work/smoke.err" &
	pid=$!
	code=000
	for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/default.tls/ca.crt" \
			--resolve "$svc_host:$port:127.0.0.1" "https://$svc_host:$port/readyz") || true
		[ "$code" = 200 ] && break
		sleep 0.25
	done
	if [ "$code" = 200 ]; then
		ok "the chart's arguments start the server; /readyz 200 over TLS for $svc_host"
		h=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/default.tls/ca.crt" \
			--resolve "$svc_host:$port:127.0.0.1" "https://$svc_host:$port/healthz") || true
		if [ "$h" = 200 ]; then
			ok "liveness probe path /healthz answers 200"
		else
			bad "/healthz answered $h"
		fi
		if curl -sf "http://127.0.0.1:$mport/metrics" | grep -q '^tableguard_'; then
			ok "metrics on the chart's metrics port"
		else
			bad "no tableguard_ metrics on the metrics port"
		fi
	else
		bad "the chart's arguments do not start a ready server (/readyz: $code)"
		sed 's/^/      /' "$work/smoke.err" | tail -5
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "SIGTERM: clean exit"
	else
		bad "SIGTERM: exit status $rc"
	fi
}

# --- tools -------------------------------------------------------------------
helm=""
for h in "$build/tools/helm/helm" "$root/build/tools/helm/helm" "$(command -v helm 2>/dev/null)"; do
	if [ -n "$h" ] && [ -x "$h" ]; then
		helm=$h
		break
	fi
done
render_bin=""
for r in "$(command -v chart-render 2>/dev/null)" "$root/build/tools/bin/chart-render"; do
	if [ -n "$r" ] && [ -x "$r" ]; then
		render_bin=$r
		break
	fi
done
chart_check=$root/../shared/tools/chart-render/chart-check
[ -x "$chart_check" ] && [ -n "$render_bin" ] || chart_check=""

if [ -n "$helm" ]; then
	echo "rendering with $($helm version --short) ($helm)"
elif [ -n "$render_bin" ]; then
	echo "rendering with $($render_bin --version) (no Helm; run tests/chart/install-tools.sh)"
else
	echo "chart checks skipped: neither Helm nor chart-render is installed (run tests/chart/install-tools.sh)"
fi
[ -n "$chart_check" ] || echo "note: chart-check not found (../shared/tools/chart-render); no strict schema validation"
# The reference schemas have no StatefulSet (the audit volume per replica runs one): compose a
# strict one from the Deployment's pod template and claim template types.
schema_args=""
ref_schemas=$root/../shared/reference/k8s-schemas
if [ -n "$chart_check" ] && [ -d "$ref_schemas" ]; then
	if python3 "$here/statefulset-schema.py" "$ref_schemas" "$work/schemas"; then
		schema_args="--schema-dir $work/schemas"
	else
		echo "FAIL  composing the StatefulSet schema"
		failed=$((failed + 1))
	fi
fi

# render OUT ARGS...: helm template, or chart-render, with the release's name and namespace.
render() {
	out=$1
	shift
	if [ -n "$helm" ]; then
		"$helm" template "$release" "$chart" --namespace "$ns" --kube-version "$kube" "$@" >"$out"
	else
		"$render_bin" --namespace "$ns" --kube-version "v$kube" "$@" "$release" "$chart" >"$out"
	fi
}

# A CA for the bring-your-own-certificate variant.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=byo-ca \
	-keyout "$work/byo.key" -out "$work/byo.crt" >/dev/null 2>&1
byo_ca=$(base64 -w0 "$work/byo.crt")

# name | extra arguments (no spaces inside an argument)
variants="default|
cert-manager|--set certManager.enabled=true --api-versions cert-manager.io/v1
cert-manager-issuer|--set certManager.enabled=true --set certManager.issuerRef.name=corp-ca --set certManager.issuerRef.kind=ClusterIssuer --api-versions cert-manager.io/v1
existing-secret|--set tls.existingSecret=my-tls --set tls.caBundle=$byo_ca
servicemonitor|--set serviceMonitor.enabled=true --set serviceMonitor.labels.release=prometheus --api-versions monitoring.coreos.com/v1
networkpolicy|--set networkPolicy.enabled=true
traitdefinition|--set traitDefinition.install=true
audit-pvc|-f $here/values-audit-pvc.yaml
audit-stdout|--set audit.mode=stdout
audit-retention|--set audit.mode=persistentVolumeClaim --set audit.persistence.retentionDays=365
audit-shared-claim|--set audit.mode=persistentVolumeClaim --set audit.persistence.existingClaim=audit-shared --set audit.persistence.accessModes={ReadWriteMany}
audit-emptydir|--set audit.mode=emptyDir
audit-disabled|--set audit.mode=disabled --set metrics.enabled=false
grafana|--set grafanaDashboard.enabled=true
priority|--set priorityClassName=system-cluster-critical --set server.threads=4
selectors|-f $here/values-selectors.yaml
policy-map|-f $here/values-policy-map.yaml
exceptions-map|-f $here/values-exceptions-map.yaml
no-cleanup|--set webhook.removeBeforeUninstall=false
prometheusrule|--set prometheusRule.enabled=true --set prometheusRule.labels.release=prometheus --api-versions monitoring.coreos.com/v1
hostnetwork|--set hostNetwork=true --set containerPorts.https=10443 --set containerPorts.metrics=10090 --set networkPolicy.enabled=true
matchconditions|-f $here/values-matchconditions.yaml
no-delete|--set webhook.validateDelete=false
no-guarded|--set webhook.guardedResources=null"

# --- render and check each variant -------------------------------------------
if [ -n "$helm" ] || [ -n "$render_bin" ]; then
	if [ -n "$helm" ]; then
		run "helm lint --strict (default values)" "$helm" lint --strict --kube-version "$kube" "$chart"
	fi
	echo "$variants" | while IFS='|' read -r name args; do
		# Word splitting of $args into separate arguments is intended.
		# shellcheck disable=SC2086
		if render "$work/$name.yaml" $args 2>"$work/$name.err"; then
			echo "ok    render $name"
		else
			echo "FAIL  render $name"
			sed 's/^/      /' "$work/$name.err"
			continue
		fi
		case $args in
		*--api-versions*) ;;
		*) if [ -n "$helm" ]; then
			# shellcheck disable=SC2086
			"$helm" lint --strict --kube-version "$kube" "$chart" $args >"$work/$name.lint" 2>&1 ||
				{ echo "FAIL  helm lint --strict $name"; sed 's/^/      /' "$work/$name.lint"; }
		fi ;;
		esac
		if [ -n "$chart_check" ]; then
			# Hooks included: a render applied as it is must hold no object twice.
			# shellcheck disable=SC2086
			if "$chart_check" --renderer "$render_bin" $schema_args -n "$ns" $args "$release" "$chart" >"$work/$name.check" 2>&1; then
				echo "ok    chart-check $name: $(tail -1 "$work/$name.check")"
			else
				echo "FAIL  chart-check $name"
				sed 's/^/      /' "$work/$name.check"
			fi
		fi
		if python3 "$here/inspect.py" render "$name" "$work/$name.yaml" "$work/$name.args" "$work/$name.policy" >"$work/$name.inspect" 2>&1; then
			echo "ok    contract $name"
		else
			echo "FAIL  contract $name"
			cat "$work/$name.inspect"
		fi
	done >"$work/variants.log"
	cat "$work/variants.log"
	passed=$((passed + $(grep -c '^ok ' "$work/variants.log")))
	nfail=$(grep -c '^FAIL' "$work/variants.log")
	failed=$((failed + nfail))
	[ "$nfail" -eq 0 ] || failures="$failures
$(grep '^FAIL' "$work/variants.log" | sed 's/^FAIL /  /')"


	# Alerts: the rendered PrometheusRule's groups pass promtool, and each alert's unit test.
	if [ -s "$work/prometheusrule.yaml" ] && command -v promtool >/dev/null 2>&1; then
		python3 -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"]
yaml.safe_dump(docs[0]["spec"], open(sys.argv[2], "w"), sort_keys=False)' "$work/prometheusrule.yaml" "$work/rules.yaml"
		cp "$here/alerts-test.yaml" "$work/alerts-test.yaml"
		run "promtool check rules (the rendered PrometheusRule)" promtool check rules "$work/rules.yaml"
		run "promtool test rules tests/chart/alerts-test.yaml" sh -c "cd '$work' && promtool test rules alerts-test.yaml"
		# Every alert of the rule has a unit test, and every test names an alert of the rule.
		run "an alert unit test for each alert" python3 -c 'import sys, yaml
rules = {r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]}
tested = {t["alertname"] for c in yaml.safe_load(open(sys.argv[2]))["tests"] for t in c["alert_rule_test"] if t["exp_alerts"]}
missing, unknown = rules - tested, tested - rules
sys.exit(f"no firing test for {sorted(missing)}; tests of unknown alerts {sorted(unknown)}" if missing or unknown else 0)' "$work/rules.yaml" "$work/alerts-test.yaml"
	elif [ -s "$work/prometheusrule.yaml" ]; then
		skip "promtool check/test rules (promtool not installed)"
	fi

	# GitOps: with cert-manager or an existing Secret, two renders are byte-identical (the
	# chart-generated CA is random without a cluster to look the Secret up in).
	for name in cert-manager existing-secret; do
		args=$(echo "$variants" | sed -n "s/^$name|//p")
		# shellcheck disable=SC2086
		if render "$work/$name.again" $args 2>/dev/null && cmp -s "$work/$name.yaml" "$work/$name.again"; then
			ok "GitOps: two renders of $name are byte-identical"
		else
			bad "GitOps: two renders of $name differ"
		fi
	done
	render "$work/default.again" 2>/dev/null
	if cmp -s "$work/default.yaml" "$work/default.again"; then
		bad "two default renders are identical: the generated certificate is not generated"
	else
		ok "default renders generate a fresh CA each time without a cluster (documented: use cert-manager or tls.existingSecret for GitOps)"
	fi

	# The docs name the webhooks as the chart registers them for a release called tableguard.
	release=tableguard
	render "$work/named.yaml" 2>/dev/null
	release=tg
	run "README and docs name the webhooks as the chart registers them" python3 -c 'import re, sys, yaml
names = {w["name"] for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"].endswith("WebhookConfiguration")
         for w in d.get("webhooks") or []}
bad = []
for path in sys.argv[2:]:
    for m in re.finditer(r"\b(?:mutate|validate)\.[a-z0-9.<>-]*tableguard\.io\b", open(path).read()):
        if m.group(0) not in names and "<fullname>" not in m.group(0):
            bad.append(f"{path}: {m.group(0)} (the chart registers {sorted(names)})")
sys.exit("\n".join(bad) if bad or not names else 0)' "$work/named.yaml" "$root/README.md" "$root"/docs/*.md "$chart/README.md"

	# Guards: values that would break the cluster must not render.
	# must_fail NAME PATTERN ARGS...: rendering fails and the message matches PATTERN.
	must_fail() {
		name=$1
		pattern=$2
		shift 2
		if render "$work/fail.yaml" "$@" >"$work/fail.err" 2>&1; then
			bad "refused: $name (it rendered)"
		elif grep -q -- "$pattern" "$work/fail.err"; then
			ok "refused: $name"
		else
			bad "refused: $name (unexpected message: $(head -3 "$work/fail.err"))"
		fi
	}
	must_fail "grace period shorter than the drain" "must exceed" --set terminationGracePeriodSeconds=20
	must_fail "existingSecret without caBundle" "needs tls.caBundle" --set tls.existingSecret=my-tls
	must_fail "cert-manager without its API" "cert-manager.io/v1" --set certManager.enabled=true
	must_fail "ServiceMonitor without its API" "monitoring.coreos.com/v1" --set serviceMonitor.enabled=true
	must_fail "failurePolicy outside Fail/Ignore" "failurePolicy" --set failurePolicy=Retry
	must_fail "timeoutSeconds above 30" "timeoutSeconds" --set timeoutSeconds=31
	must_fail "a misspelt value" "replicas" --set replicas=3
	must_fail "an audit claim with an unknown access mode" "accessModes" --set audit.mode=persistentVolumeClaim --set 'audit.persistence.accessModes={ReadWriteAll}'
	must_fail "audit retention in negative days" "retentionDays" --set audit.persistence.retentionDays=-1
	must_fail "matchConditions before Kubernetes 1.28" "needs Kubernetes 1.28" -f "$here/values-matchconditions.yaml" --kube-version 1.27.0
	must_fail "PrometheusRule without its API" "monitoring.coreos.com/v1" --set prometheusRule.enabled=true
else
	skip "chart rendering (no Helm, no chart-render)"
fi

# --- the chart's flags against the server's ----------------------------------
bin=$build/tableguard
if [ ! -x "$bin" ]; then
	bad "server binary $bin missing (make chart builds it)"
else
	help=$("$bin" serve --help 2>&1)
	if ! printf '%s\n' "$help" | grep -q -- '--policy'; then
		skip "flags against '$bin serve --help' (serve --help does not list its flags yet)"
	elif ls "$work"/*.args >/dev/null 2>&1; then
		cat "$work"/*.args | grep -- '^--' | sort -u >"$work/all.flags"
		missing=""
		while read -r f; do
			printf '%s\n' "$help" | grep -q -- "$f\\b" || missing="$missing $f"
		done <"$work/all.flags"
		if [ -z "$missing" ]; then
			ok "every chart flag is in serve --help ($(wc -l <"$work/all.flags") flags)"
		else
			bad "flags the chart passes but serve --help does not know:$missing"
		fi
	fi

	# --- the chart's own arguments start the server ------------------------
	if [ -f "$work/default.args" ] && [ -d "$work/default.tls" ] && printf '%s\n' "$help" | grep -q -- '--policy'; then
		smoke_server
	fi

	# --- the policy: same as policy/default.yaml, and it lints ----------------
	if cmp -s "$chart/files/policy.yaml" "$root/policy/default.yaml"; then
		ok "charts/tableguard/files/policy.yaml equals policy/default.yaml"
	else
		bad "charts/tableguard/files/policy.yaml differs from policy/default.yaml (cp policy/default.yaml charts/tableguard/files/policy.yaml)"
	fi
	if [ -f "$work/default.policy" ]; then
		run "rendered ConfigMap policy equals policy/default.yaml" cmp "$work/default.policy" "$root/policy/default.yaml"
	fi
	# A lint that accepts a broken policy would prove nothing about the good ones.
	printf 'apiVersion: tableguard.io/v1\nkind: ProtectionPolicy\nspec:\n  rules: 7\n' >"$work/broken.yaml"
	if lint_out=$("$bin" policy lint "$work/broken.yaml" 2>&1); then
		skip "policy lint (it accepts a broken policy: not wired yet)"
	elif printf '%s\n' "$lint_out" | grep -qi 'unknown command'; then
		skip "policy lint (not a command of $bin yet)"
	else
		for p in "$chart/files/policy.yaml" "$work/default.policy" "$work/policy-map.policy"; do
			[ -f "$p" ] || continue
			run "tableguard policy lint ${p#"$work"/}" "$bin" policy lint "$p"
		done
		if [ -f "$work/exceptions-map.exceptions" ]; then
			run "tableguard loads the exceptions given as a map" \
				"$bin" policy lint --exceptions "$work/exceptions-map.exceptions" "$work/default.policy"
		fi
		# The exceptions ConfigMap: empty by default, and a valid file the server loads.
		if [ -f "$work/default.exceptions" ]; then
			run "rendered exceptions ConfigMap lints against the shipped policy" \
				"$bin" policy lint --strict --exceptions "$work/default.exceptions" "$work/default.policy"
			run "rendered exceptions ConfigMap holds no exception by default" \
				grep -qx '  exceptions: \[\]' "$work/default.exceptions"
		fi
	fi
fi

# --- Dockerfile, dashboard, YAML style ----------------------------------------
run "Dockerfile (stages, user, entrypoint, make targets, runtime libraries)" \
	python3 "$here/inspect.py" dockerfile "$root/Dockerfile" "$root/Makefile" "$bin"
run "chart README documents every value" \
	python3 "$here/inspect.py" readme "$chart/values.yaml" "$chart/README.md"
run "chart README's values table is generated from values.yaml (tests/chart/values_table.py)" \
	python3 "$here/values_table.py" --check "$chart/values.yaml" "$chart/README.md"
run "Grafana dashboard queries exported metrics" \
	python3 "$here/inspect.py" dashboard "$chart/files/dashboard.json" "$root/server"
if command -v yamllint >/dev/null 2>&1; then
	run "yamllint chart values and check inputs" yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
		"$chart/Chart.yaml" "$chart/values.yaml" "$chart/files/policy.yaml" "$here"/values-*.yaml
else
	skip "yamllint (not installed)"
fi

echo
echo "chart checks: $passed passed, $failed failed, $skipped skipped"
if [ "$failed" -ne 0 ]; then
	printf 'failures:%s\n' "$failures"
	exit 1
fi
exit 0
